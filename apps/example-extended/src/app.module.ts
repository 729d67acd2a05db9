import { Module } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityModule } from '@idp/identity';
import { AcmeModule } from './acme/acme.module';
import { ACME_ADMIN_SCOPES } from './acme/acme.constants';
import { AcmeUserStore } from './acme/acme-user-store';
import { EmployeeProfile } from './acme/employee-profile.entity';
import { EmployeeProfiles1765000000000 } from './acme/migrations/1765000000000-EmployeeProfiles';

/** apps/example-extended/theme/<name>, from the sources (tests) or from dist/ (npm run start:example). */
function themeDir(name: string): string {
  const candidates = [join(__dirname, '..', 'theme', name), join(__dirname, '..', '..', '..', '..', 'apps', 'example-extended', 'theme', name)];
  return candidates.find((c) => existsSync(c)) ?? candidates[0];
}

/**
 * Acme's identity provider: the IdP as it ships (IdentityModule) plus Acme's own module. The
 * options hand the IdP what it cannot find by decorator: the extra table and its migration, the
 * user store, the theme, and the admin scopes of Acme's admin routes.
 */
@Module({
  imports: [
    IdentityModule.forRoot({
      entities: [EmployeeProfile],
      migrations: [EmployeeProfiles1765000000000],
      userStore: AcmeUserStore,
      theme: { views: themeDir('views'), assets: themeDir('assets') },
      adminScopes: ACME_ADMIN_SCOPES,
    }),
    AcmeModule,
  ],
})
export class ExampleAppModule {}
