import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Client } from './client.entity';
import { UsedAssertion } from './used-assertion.entity';
import { ClientsService } from './clients.service';
import { ClientAuthRegistry } from './client-auth/client-auth-registry';
import { ClientAuthenticator } from './client-auth/client-authenticator';
import { ClientAuthGuard } from './client-auth/client-auth.guard';
import { ClientSecretBasic } from './client-auth/client-secret-basic';
import { ClientSecretPost } from './client-auth/client-secret-post';
import { PrivateKeyJwt } from './client-auth/private-key-jwt';
import { NoneAuth } from './client-auth/none';

@Module({
  imports: [TypeOrmModule.forFeature([Client, UsedAssertion])],
  providers: [ClientsService, ClientAuthRegistry, ClientAuthenticator, ClientAuthGuard, ClientSecretBasic, ClientSecretPost, PrivateKeyJwt, NoneAuth],
  exports: [ClientsService, ClientAuthRegistry, ClientAuthenticator, ClientAuthGuard],
})
export class ClientsModule {}
