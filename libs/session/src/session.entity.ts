import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * A browser session (express-session data), kept in the database so that restarts and replicas
 * keep users signed in. Only the hash of the cookie's session id is stored.
 */
@Entity('sessions')
export class SessionRecord {
  @PrimaryColumn({ type: 'varchar', length: 64 }) sid_hash: string;
  @Column({ type: 'text' }) data: string;
  @Index('idx_sessions_expires_at')
  @Column() expires_at: Date;
  @Index('idx_sessions_user_id')
  @Column({ type: 'varchar', length: 36, nullable: true }) user_id: string | null;
}
