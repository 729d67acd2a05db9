import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ClientsModule } from '@idp/clients';
import { ResourcesModule } from '@idp/resources';
import { SessionModule } from '@idp/session';
import { Consent } from './consent.entity';
import { ConsentService } from './consent.service';
import { ConsentController } from './consent.controller';

@Module({
  imports: [TypeOrmModule.forFeature([Consent]), ClientsModule, ResourcesModule, SessionModule],
  controllers: [ConsentController],
  providers: [ConsentService],
  exports: [ConsentService],
})
export class ConsentModule {}
