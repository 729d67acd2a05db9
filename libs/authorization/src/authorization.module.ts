import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { ResourcesModule } from '@idp/resources';
import { SessionModule } from '@idp/session';
import { ConsentModule } from '@idp/consent';
import { UsersModule } from '@idp/users';
import { AuthorizationCode } from './authorization-code.entity';
import { AuthorizationService } from './authorization.service';
import { AuthorizeController } from './authorize.controller';
import { AuthorizeRequestGuard, AuthorizeRequestValidator } from './authorize-request';
import { AuthorizeErrorFilter } from './authorize-error.filter';

@Module({
  imports: [TypeOrmModule.forFeature([AuthorizationCode]), ClientsModule, KeysModule, ResourcesModule, SessionModule, ConsentModule, UsersModule],
  controllers: [AuthorizeController],
  providers: [AuthorizationService, AuthorizeRequestValidator, AuthorizeRequestGuard, AuthorizeErrorFilter],
  exports: [AuthorizationService],
})
export class AuthorizationModule {}
