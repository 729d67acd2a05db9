import { Column, Entity, PrimaryColumn } from 'typeorm';

/** An end user. `id` is the `sub` of every token issued for them. */
@Entity('users')
export class User {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id: string;
  /** Normalized: trimmed and lower-cased, unique. */
  @Column({ type: 'varchar', length: 320, unique: true }) email: string;
  /** argon2id (PHC string); never selected unless asked for. */
  @Column({ type: 'varchar', length: 255, select: false }) password_hash: string;
  @Column({ type: 'varchar', length: 255, nullable: true }) name: string | null;
  @Column({ type: 'boolean', default: false }) email_verified: boolean;
  @Column({ type: 'boolean', default: false }) blocked: boolean;
  @Column() created_at: Date;
  @Column() updated_at: Date;
}
