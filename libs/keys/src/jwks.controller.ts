import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { JWKS_MAX_AGE_S, KeysService } from './keys.service';

@ApiExcludeController()
@Controller()
export class JwksController {
  constructor(private readonly keys: KeysService) {}

  /**
   * RFC 7517 JWK Set of the public signing keys. Cached by relying parties for JWKS_MAX_AGE_S, which
   * the activation lead of a new key covers (keys.service.ts), so a copy fetched just before a
   * rotation already holds the key that signs next.
   */
  @Get('.well-known/jwks.json')
  @Header('Content-Type', 'application/jwk-set+json')
  @Header('Cache-Control', `public, max-age=${JWKS_MAX_AGE_S}`)
  jwks() {
    return this.keys.jwks();
  }
}
