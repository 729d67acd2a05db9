import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * An authorization code (RFC 6749 §4.1.2): only its SHA-256 is stored (the code is 256 random
 * bits). Bound to the client, redirect URI, PKCE challenge, nonce, scopes, audience and session;
 * lives 60 s; `used_at` is set once, atomically, at redemption.
 */
@Entity('authorization_codes')
export class AuthorizationCode {
  @PrimaryColumn({ type: 'varchar', length: 64 }) code_hash: string;
  @Column({ type: 'varchar', length: 128 }) client_id: string;
  @Column({ type: 'varchar', length: 36 }) user_id: string;
  @Column({ type: 'varchar', length: 2048 }) redirect_uri: string;
  @Column({ type: 'varchar', length: 128, nullable: true }) code_challenge: string | null;
  @Column({ type: 'simple-json' }) scopes: string[];
  @Column({ type: 'varchar', length: 512, nullable: true }) audience: string | null;
  @Column({ type: 'varchar', length: 512, nullable: true }) nonce: string | null;
  @Column({ type: 'integer' }) auth_time: number;
  @Column({ type: 'varchar', length: 64 }) sid: string;
  @Column({ type: 'varchar', length: 255 }) amr: string;
  @Index('idx_authorization_codes_expires_at')
  @Column() expires_at: Date;
  @Column({ nullable: true, type: Date }) used_at: Date | null;
  /** The access token issued from this code, revoked if the code is ever replayed. */
  @Column({ type: 'varchar', length: 64, nullable: true }) access_jti: string | null;
  @Column({ nullable: true, type: Date }) access_exp: Date | null;
  @Column() created_at: Date;
}
