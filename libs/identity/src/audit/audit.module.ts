import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { TokenModule } from '@idp/token';
import { AuditEvent } from './audit-event.entity';
import { AuditService } from './audit.service';
import { AuditAdminController } from './audit.admin.controller';

@Module({
  imports: [TypeOrmModule.forFeature([AuditEvent]), TokenModule],
  controllers: [AuditAdminController],
  providers: [AuditService],
})
export class AuditModule {}
