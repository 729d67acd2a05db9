import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * As written at boot and at rotation: `next` = published, not scheduled (`activates_at` null);
 * `current` = scheduled to sign from `activates_at`; `previous` = superseded (`publish_until` set).
 * Who signs at a time t is decided by `activates_at` alone (the greatest one <= t), with no write
 * when t passes, so this column can lag: a `current` row may not sign yet, a `previous` one may
 * still sign until its successor's `activates_at`.
 */
export type KeyStatus = 'next' | 'current' | 'previous';

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
  /** When the key starts signing; null while it is only published (the next key). */
  @Column({ nullable: true, type: Date }) activates_at: Date | null;
  /** When a previous key stops being published: after every token it signed has expired. */
  @Column({ nullable: true, type: Date }) publish_until: Date | null;
}
