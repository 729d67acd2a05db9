import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** What a user allowed a client: the scopes (OIDC and API scopes), remembered until revoked. */
@Entity('consents')
@Index('uq_consents_user_client', ['user_id', 'client_id'], { unique: true })
export class Consent {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id: string;
  @Column({ type: 'varchar', length: 36 }) user_id: string;
  @Index('idx_consents_client_id')
  @Column({ type: 'varchar', length: 128 }) client_id: string;
  /** Scope values; API scopes are qualified as `<api identifier> <scope>` would collide, so kept per audience. */
  @Column({ type: 'simple-json' }) scopes: ConsentScopes;
  @Column() granted_at: Date;
  @Column() updated_at: Date;
}

/** Granted scopes by audience: '' holds the OpenID Connect scopes, an API identifier its own scopes. */
export type ConsentScopes = Record<string, string[]>;
