export { ResourcesModule } from './resources.module';
export { ResourcesService, ADMIN_SCOPES, identifierProblem } from './resources.service';
export { Api, ApiScope } from './api.entity';
export { ClientGrant } from './client-grant.entity';
export { ApiScopeDto, ApiView, ClientGrantView, CreateApiDto, CreateClientGrantDto, UpdateApiDto } from './resource.dto';
