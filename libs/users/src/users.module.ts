import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { User } from './user.entity';
import { UsersService } from './users.service';
import { ClaimsService, EmailClaims, ProfileClaims } from './claims';

@Module({
  imports: [TypeOrmModule.forFeature([User])],
  providers: [UsersService, ClaimsService, ProfileClaims, EmailClaims],
  exports: [UsersService, ClaimsService],
})
export class UsersModule {}
