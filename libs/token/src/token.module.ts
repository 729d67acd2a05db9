import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { ResourcesModule } from '@idp/resources';
import { UsersModule } from '@idp/users';
import { AuthorizationModule } from '@idp/authorization';
import { GrantRegistry } from './grant-handler';
import { TokenIssuer } from './token-issuer';
import { ProtocolEndpoints } from './protocol-endpoints';
import { BearerGuard } from './bearer.guard';
import { RefreshToken } from './refresh-token.entity';
import { RevokedToken } from './revoked-token.entity';
import { RevocationService } from './revocation.service';
import { TokenIntrospection } from './token-introspection';
import { TokenCustomizers } from './token-customizer';
import { UserTokens } from './grants/user-tokens';
import { ClientCredentialsGrant } from './grants/client-credentials.grant';
import { AuthorizationCodeGrant } from './grants/authorization-code.grant';
import { RefreshTokenGrant } from './grants/refresh-token.grant';

@Module({
  imports: [TypeOrmModule.forFeature([RefreshToken, RevokedToken]), ClientsModule, KeysModule, ResourcesModule, UsersModule, AuthorizationModule],
  providers: [
    GrantRegistry, TokenIssuer, TokenCustomizers, BearerGuard, ProtocolEndpoints, RevocationService, TokenIntrospection, UserTokens,
    ClientCredentialsGrant, AuthorizationCodeGrant, RefreshTokenGrant,
  ],
  exports: [ProtocolEndpoints, GrantRegistry, TokenIssuer, BearerGuard, RevocationService, KeysModule],
})
export class TokenModule {}
