import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ClientsModule } from '@idp/clients';
import { Api } from './api.entity';
import { ClientGrant } from './client-grant.entity';
import { ResourcesService } from './resources.service';

@Module({
  imports: [TypeOrmModule.forFeature([Api, ClientGrant]), ClientsModule],
  providers: [ResourcesService],
  exports: [ResourcesService],
})
export class ResourcesModule {}
