import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** One security event (CONTRACT §4 audit events): what, when, who, which client, from where. Never a secret. */
@Entity('audit_events')
@Index('idx_audit_events_type', ['type', 'id'])
@Index('idx_audit_events_user', ['user_id', 'id'])
@Index('idx_audit_events_client', ['client_id', 'id'])
export class AuditEvent {
  /** UUIDv7: time-ordered, so the key orders the log. */
  @PrimaryColumn({ type: 'varchar', length: 36 }) id: string;
  @Column({ type: 'varchar', length: 64 }) type: string;
  @Column() created_at: Date;
  @Column({ type: 'varchar', length: 36, nullable: true }) user_id: string | null;
  @Column({ type: 'varchar', length: 128, nullable: true }) client_id: string | null;
  @Column({ type: 'varchar', length: 64, nullable: true }) ip: string | null;
  /** Who made an admin change (the admin token's client_id). */
  @Column({ type: 'varchar', length: 128, nullable: true }) actor: string | null;
  @Column({ type: 'varchar', length: 64, nullable: true }) request_id: string | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  @Column({ type: 'simple-json' }) data: Record<string, any>;
}
