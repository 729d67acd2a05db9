import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * A refresh token (RFC 6749 §6): only its keyed hash is stored. Tokens rotated from one another
 * share a `family_id`; presenting a used one revokes the whole family (RFC 9700 §4.14.2).
 */
@Entity('refresh_tokens')
@Index('idx_refresh_tokens_user_client', ['user_id', 'client_id'])
export class RefreshToken {
  @PrimaryColumn({ type: 'varchar', length: 64 }) token_hash: string;
  @Index('idx_refresh_tokens_family_id')
  @Column({ type: 'varchar', length: 36 }) family_id: string;
  @Column({ type: 'varchar', length: 128 }) client_id: string;
  @Column({ type: 'varchar', length: 36 }) user_id: string;
  @Column({ type: 'simple-json' }) scopes: string[];
  @Column({ type: 'varchar', length: 512, nullable: true }) audience: string | null;
  @Column({ type: 'varchar', length: 64 }) sid: string;
  @Column({ type: 'integer' }) auth_time: number;
  @Column({ type: 'varchar', length: 255 }) amr: string;
  /** The code the family started from (revoked with it if the code is replayed). */
  @Index('idx_refresh_tokens_code_hash')
  @Column({ type: 'varchar', length: 64, nullable: true }) code_hash: string | null;
  @Column() created_at: Date;
  /** Absolute expiry of the family (no sliding past it). */
  @Column() expires_at: Date;
  /** Set when rotated (the token was exchanged for a new one). */
  @Column({ nullable: true, type: Date }) used_at: Date | null;
  @Column({ nullable: true, type: Date }) revoked_at: Date | null;
  /** The last access token issued with this token, revoked with the family. */
  @Column({ type: 'varchar', length: 64, nullable: true }) access_jti: string | null;
  @Column({ nullable: true, type: Date }) access_exp: Date | null;
}
