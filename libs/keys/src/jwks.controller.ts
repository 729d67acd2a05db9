import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { KeysService } from './keys.service';

@ApiExcludeController()
@Controller()
export class JwksController {
  constructor(private readonly keys: KeysService) {}

  /** RFC 7517 JWK Set of the public signing keys. */
  @Get('.well-known/jwks.json')
  @Header('Content-Type', 'application/jwk-set+json')
  @Header('Cache-Control', 'public, max-age=300')
  jwks() {
    return this.keys.jwks();
  }
}
