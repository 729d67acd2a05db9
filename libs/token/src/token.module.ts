import { Module } from '@nestjs/common';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { ResourcesModule } from '@idp/resources';
import { GrantRegistry } from './grant-handler';
import { TokenIssuer } from './token-issuer';
import { TokenController } from './token.controller';
import { BearerGuard } from './bearer.guard';
import { FormBodyGuard } from './form-body.guard';
import { ClientCredentialsGrant } from './grants/client-credentials.grant';

@Module({
  imports: [ClientsModule, KeysModule, ResourcesModule],
  controllers: [TokenController],
  providers: [GrantRegistry, TokenIssuer, BearerGuard, FormBodyGuard, ClientCredentialsGrant],
  exports: [GrantRegistry, TokenIssuer, BearerGuard, KeysModule],
})
export class TokenModule {}
