import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * The `jti` of every accepted client assertion (RFC 7523 §3 item 7), kept until the assertion
 * expires, so that one assertion authenticates once. The primary key makes the insert the check:
 * of many parallel uses exactly one insert succeeds, on SQLite and PostgreSQL alike.
 */
@Entity('used_assertions')
export class UsedAssertion {
  @PrimaryColumn({ type: 'varchar', length: 128 }) client_id: string;
  @PrimaryColumn({ type: 'varchar', length: 255 }) jti: string;
  @Index('idx_used_assertions_expires_at')
  @Column() expires_at: Date;
}
