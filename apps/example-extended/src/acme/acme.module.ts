import { Module } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ResourcesModule } from '@idp/resources';
import { TokenModule } from '@idp/token';
import { UsersModule } from '@idp/users';
import { EmployeeProfile } from './employee-profile.entity';
import { ProfilesService } from './profiles.service';
import { DepartmentClaims } from './department.claims';
import { DepartmentTokenGrant } from './department-token.grant';
import { ClientSecretHeader } from './client-secret-header';
import { LoginCounter } from './login-counter';
import { FlaggedEmployeePolicy } from './flagged-employee.policy';
import { HrDepartmentCustomizer } from './department.customizer';
import { ExampleAdminController } from './example.admin.controller';
import { AcmeRequestInterceptor } from './acme-request.interceptor';
import { AcmeBlockGuard } from './acme-block.guard';

/**
 * Acme's extension of the IdP: one ordinary Nest module. Every seam is a provider found by its
 * decorator when the application boots; listing the class in `providers` is all the registration
 * there is. The IdP's services it uses come from the lib modules it imports, as with any Nest
 * module: TokenIssuer and BearerGuard (TokenModule), ResourcesService (ResourcesModule),
 * UsersService and UserStore (UsersModule); IdpConfig and IdpEvents are everywhere (CoreModule).
 */
@Module({
  imports: [TypeOrmModule.forFeature([EmployeeProfile]), TokenModule, ResourcesModule, UsersModule],
  controllers: [ExampleAdminController],
  providers: [
    ProfilesService,
    DepartmentClaims, // @ClaimsProvider({ name: 'department' })
    DepartmentTokenGrant, // @GrantHandler({ name: 'urn:example:params:oauth:grant-type:department-token' })
    ClientSecretHeader, // @ClientAuthMethod({ name: 'client_secret_header' })
    LoginCounter, // @OnIdpEvent('user.login')
    FlaggedEmployeePolicy, // @LoginPolicy({ name: 'acme-flagged-employees' })
    HrDepartmentCustomizer, // @TokenCustomizer({ name: 'acme-hr-department' })
    // Global: on every route of the application, the IdP's own included.
    { provide: APP_INTERCEPTOR, useClass: AcmeRequestInterceptor },
    { provide: APP_GUARD, useClass: AcmeBlockGuard },
  ],
})
export class AcmeModule {}
