import { runIdentityApp } from '@idp/identity';
import { ExampleAppModule } from './app.module';

/**
 * `npm run start:example`: Acme's IdP. The same start-up as apps/idp (configuration from the
 * environment, pending migrations, graceful SIGTERM), with Acme's root module.
 */
void runIdentityApp(ExampleAppModule);
