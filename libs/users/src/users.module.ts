import { Module } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { IDP_OVERRIDES, IdpOverrides } from '@idp/core';
import { UserStore } from './user-store';
import { TypeOrmModule } from '@nestjs/typeorm';
import { User } from './user.entity';
import { UsersService } from './users.service';
import { ClaimsService, EmailClaims, ProfileClaims } from './claims';

@Module({
  imports: [TypeOrmModule.forFeature([User])],
  providers: [
    UsersService, ClaimsService, ProfileClaims, EmailClaims,
    {
      provide: UserStore,
      inject: [IDP_OVERRIDES, ModuleRef, UsersService],
      useFactory: (overrides: IdpOverrides, ref: ModuleRef, users: UsersService) =>
        overrides.userStore ? ref.create(overrides.userStore as never) : users,
    },
  ],
  exports: [UsersService, ClaimsService, UserStore],
})
export class UsersModule {}
