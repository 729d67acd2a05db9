import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * Acme's own data about a user, kept beside the IdP's tables: the department (a claim, and a
 * claim in the HR API's access tokens) and whether the account is flagged (no sign-in).
 * `user_id` is the IdP user's id, the `sub` of their tokens.
 */
@Entity('employee_profiles')
@Index('idx_employee_profiles_department', ['department'])
export class EmployeeProfile {
  @PrimaryColumn({ type: 'varchar', length: 36 }) user_id: string;
  @Column({ type: 'varchar', length: 64 }) department: string;
  @Column({ type: 'boolean', default: false }) flagged: boolean;
  @Column() updated_at: Date;
}
