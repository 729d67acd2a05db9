import { runIdentityApp } from '@idp/identity';
import { AppModule } from './app.module';

/** `npm start`: the IdP as it ships (see runIdentityApp for what starting means). */
void runIdentityApp(AppModule);
