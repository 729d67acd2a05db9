import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { EmployeeProfile } from './employee-profile.entity';

/** The only reader and writer of employee_profiles (a plain TypeORM repository: no repository class needed). */
@Injectable()
export class ProfilesService {
  constructor(@InjectRepository(EmployeeProfile) private readonly profiles: Repository<EmployeeProfile>) {}

  find(userId: string): Promise<EmployeeProfile | null> {
    return this.profiles.findOne({ where: { user_id: userId } });
  }

  /** Creates or replaces a user's profile (one statement: INSERT … ON CONFLICT on both databases). */
  async set(userId: string, data: { department: string; flagged: boolean }): Promise<EmployeeProfile> {
    const row = this.profiles.create({ user_id: userId, department: data.department, flagged: data.flagged, updated_at: new Date() });
    await this.profiles.upsert(row, ['user_id']);
    return row;
  }

  /** Whether anyone works in this department (the department-token grant refuses made-up ones). */
  async departmentExists(department: string): Promise<boolean> {
    return (await this.profiles.count({ where: { department } })) > 0;
  }
}
