import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsEmail, IsOptional, IsString, MaxLength, MinLength, ValidateIf } from 'class-validator';
import { User } from './user.entity';

export class CreateUserDto {
  @ApiProperty({ example: 'ada@example.com' }) @IsEmail() @MaxLength(320) email: string;
  @ApiProperty({ minLength: 8, maxLength: 256, writeOnly: true }) @IsString() @MinLength(8) @MaxLength(256) password: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(255) name?: string;
  @ApiPropertyOptional({ default: false }) @IsOptional() @IsBoolean() email_verified?: boolean;
  @ApiPropertyOptional({ default: false }) @IsOptional() @IsBoolean() blocked?: boolean;
}

/** Like @IsOptional() but for an absent field only: `null` is validated (and refused) where the column cannot hold it. */
const IsOptionalNotNull = () => ValidateIf((_, value) => value !== undefined);

export class UpdateUserDto {
  @ApiPropertyOptional() @IsOptionalNotNull() @IsEmail() @MaxLength(320) email?: string;
  @ApiPropertyOptional({ minLength: 8, maxLength: 256, writeOnly: true }) @IsOptionalNotNull() @IsString() @MinLength(8) @MaxLength(256) password?: string;
  @ApiPropertyOptional({ nullable: true }) @IsOptional() @IsString() @MaxLength(255) name?: string | null;
  @ApiPropertyOptional() @IsOptionalNotNull() @IsBoolean() email_verified?: boolean;
  @ApiPropertyOptional() @IsOptionalNotNull() @IsBoolean() blocked?: boolean;
}

export class UserView {
  @ApiProperty({ description: 'the `sub` of tokens issued for this user' }) user_id: string;
  @ApiProperty() email: string;
  @ApiProperty({ nullable: true, type: String }) name: string | null;
  @ApiProperty() email_verified: boolean;
  @ApiProperty() blocked: boolean;
  @ApiProperty() created_at: string;
  @ApiProperty() updated_at: string;

  static of(u: User): UserView {
    return {
      user_id: u.id, email: u.email, name: u.name, email_verified: u.email_verified, blocked: u.blocked,
      created_at: u.created_at.toISOString(), updated_at: u.updated_at.toISOString(),
    };
  }
}
