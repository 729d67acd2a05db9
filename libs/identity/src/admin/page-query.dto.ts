import { IsOptional, IsString, MaxLength } from 'class-validator';

/** `?limit=&cursor=` (checked by pageRequest) plus each list's own filters. */
export class PageQuery {
  @IsOptional() @IsString() limit?: string;
  @IsOptional() @IsString() @MaxLength(512) cursor?: string;
}

export class UserQuery extends PageQuery {
  @IsOptional() @IsString() @MaxLength(320) email?: string;
}

export class ClientGrantQuery extends PageQuery {
  @IsOptional() @IsString() @MaxLength(128) client_id?: string;
}
