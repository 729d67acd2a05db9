import { Controller, Get, Header, Injectable } from '@nestjs/common';
import { ApiExcludeController, type OpenAPIObject } from '@nestjs/swagger';

/** The admin API's OpenAPI document, built once the application's routes are known (boot.ts). */
@Injectable()
export class AdminOpenApi {
  document?: OpenAPIObject;
}

/** `GET /admin/openapi.json`: the admin API's OpenAPI 3 document (public: it describes, it grants nothing). */
@ApiExcludeController()
@Controller('admin')
export class AdminOpenApiController {
  constructor(private readonly openapi: AdminOpenApi) {}

  @Get('openapi.json')
  @Header('Cache-Control', 'no-cache')
  document(): OpenAPIObject | Record<string, never> {
    return this.openapi.document ?? {};
  }
}
