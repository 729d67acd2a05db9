import { Module } from '@nestjs/common';
import { IdentityModule } from '@idp/identity';

/** The IdP as it ships: the identity module and nothing else. A company adds its own modules here (docs/extending.md). */
@Module({ imports: [IdentityModule.forRoot()] })
export class AppModule {}
