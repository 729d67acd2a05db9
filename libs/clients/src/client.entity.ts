import { Column, Entity, PrimaryColumn } from 'typeorm';

export type TokenEndpointAuthMethod = string;

/** A registered client (RFC 7591 metadata plus our extensions). */
@Entity('clients')
export class Client {
  @PrimaryColumn({ type: 'varchar', length: 128 }) client_id: string;
  @Column({ type: 'varchar', length: 255, nullable: true }) client_name: string | null;
  /** HMAC-SHA256 of the secret under a key derived from IDP_SECRET_KEY (see SecretKeyring.hashSecret). */
  @Column({ type: 'varchar', length: 128, nullable: true, select: false }) secret_hash: string | null;
  @Column({ type: 'simple-json' }) redirect_uris: string[];
  @Column({ type: 'simple-json' }) post_logout_redirect_uris: string[];
  @Column({ type: 'simple-json' }) grant_types: string[];
  @Column({ type: 'varchar', length: 64 }) token_endpoint_auth_method: TokenEndpointAuthMethod;
  @Column({ type: 'simple-json', nullable: true }) // eslint-disable-next-line @typescript-eslint/no-explicit-any
  jwks: { keys: Record<string, any>[] } | null;
  @Column({ type: 'varchar', length: 2048, nullable: true }) jwks_uri: string | null;
  /** Space-separated scopes the client may request at /authorize; null = any. */
  @Column({ type: 'varchar', length: 2048, nullable: true }) scope: string | null;
  @Column({ type: 'boolean', default: false }) first_party: boolean;
  @Column({ type: 'simple-json' }) allowed_origins: string[];
  @Column({ type: 'boolean', default: true }) refresh_token_rotation: boolean;
  /** Seconds since the epoch (RFC 7591 §3.2.1). */
  @Column({ type: 'integer' }) client_id_issued_at: number;
  @Column() created_at: Date;
  @Column() updated_at: Date;

  get isPublic(): boolean {
    return this.token_endpoint_auth_method === 'none';
  }
}
