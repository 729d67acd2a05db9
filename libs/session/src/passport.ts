import { Authenticator } from 'passport';

/**
 * This application's own Passport (`new passport.Authenticator()`), provided by class. The
 * process-wide `passport` object (which @nestjs/passport registers on) is shared by every Nest
 * application in the process: a second app replaced the first's `local` strategy and chained its
 * session deserializers, so a closed app's deserializer broke the next app's logins. One
 * instance per app keeps strategies, serializers and session handling with their own database.
 */
export class IdpPassport extends Authenticator {}
