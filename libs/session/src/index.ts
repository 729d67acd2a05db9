import './session.types';
export { SessionModule } from './session.module';
export { SessionGuard, LoginCheck, RequestWithLogin, currentSessionUser } from './session.guard';
export { CsrfGuard, csrfToken } from './csrf';
export { Interactions } from './interactions';
export { SessionRecord } from './session.entity';
export { LoginPolicy, LoginPolicyContext, LoginDecision } from './login-policy';
export type { SessionUser, Interaction } from './session.types';
