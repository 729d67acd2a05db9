import { Column, Entity, PrimaryColumn } from 'typeorm';

export interface ApiScope {
  value: string;
  description: string;
}

/** A resource server (an "API" in Auth0's words): the audience of access tokens. */
@Entity('apis')
export class Api {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id: string;
  /** The audience (`aud`) of tokens for this API; an absolute URI, unique. */
  @Column({ type: 'varchar', length: 512, unique: true }) identifier: string;
  @Column({ type: 'varchar', length: 255 }) name: string;
  @Column({ type: 'simple-json' }) scopes: ApiScope[];
  /** Access token lifetime in seconds. */
  @Column({ type: 'integer', default: 86400 }) token_lifetime: number;
  @Column({ type: 'boolean', default: false }) allow_offline_access: boolean;
  /** The admin API itself: cannot be deleted, its identifier follows ISSUER. */
  @Column({ type: 'boolean', default: false }) is_system: boolean;
  @Column() created_at: Date;
  @Column() updated_at: Date;
}
