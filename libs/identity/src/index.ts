export { IdentityModule, IdentityOptions, IDENTITY_OPTIONS } from './identity.module';
export { createIdentityApp, CreatedApp } from './boot';
export { runIdentityApp } from './run';
export { dataSourceOptions, ENTITIES, MIGRATIONS } from './database';
export { AdminApi } from './admin/admin.decorators';
export { PageQuery } from './admin/page-query.dto';
export { AuditService, AUDITED_EVENTS } from './audit/audit.service';
