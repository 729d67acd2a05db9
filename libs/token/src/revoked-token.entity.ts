import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * The deny-list of revoked JWT access tokens, by `jti`, kept until the token would have expired
 * anyway. Checked by /userinfo, introspection and every bearer-protected route.
 */
@Entity('revoked_tokens')
export class RevokedToken {
  @PrimaryColumn({ type: 'varchar', length: 64 }) jti: string;
  @Index('idx_revoked_tokens_expires_at')
  @Column() expires_at: Date;
}
