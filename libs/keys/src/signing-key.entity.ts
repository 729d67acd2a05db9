import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

export type KeyStatus = 'current' | 'previous';

/** A signing key: the public JWK in clear, the private JWK sealed with IDP_SECRET_KEY (AES-256-GCM). */
@Entity('signing_keys')
export class SigningKey {
  @PrimaryColumn({ type: 'varchar', length: 64 }) kid: string;
  @Column({ type: 'varchar', length: 16 }) alg: string;
  @Column({ type: 'simple-json' }) public_jwk: Record<string, any>;
  @Column({ type: 'text', select: false }) private_sealed: string;
  @Index('idx_signing_keys_status')
  @Column({ type: 'varchar', length: 16 }) status: KeyStatus;
  @Column() created_at: Date;
  /** When a previous key stops being published: after every token it signed has expired. */
  @Column({ nullable: true, type: Date }) publish_until: Date | null;
}
