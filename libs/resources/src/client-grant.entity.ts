import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { Client } from '@idp/clients';
import { Api } from './api.entity';

/**
 * Lets a client use `client_credentials` for one API with some of its scopes. Deleting the client
 * or the API deletes its grants (foreign keys, ON DELETE CASCADE).
 */
@Entity('client_grants')
@Index('uq_client_grants_client_api', ['client_id', 'api_id'], { unique: true })
export class ClientGrant {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id: string;
  @Column({ type: 'varchar', length: 128 }) client_id: string;
  @Index('idx_client_grants_api_id')
  @Column({ type: 'varchar', length: 36 }) api_id: string;
  @Column({ type: 'simple-json' }) scope: string[];
  @Column() created_at: Date;

  @ManyToOne(() => Client, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'client_id', referencedColumnName: 'client_id', foreignKeyConstraintName: 'fk_client_grants_client' })
  client?: Client;

  @ManyToOne(() => Api, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'api_id', referencedColumnName: 'id', foreignKeyConstraintName: 'fk_client_grants_api' })
  api?: Api;
}
