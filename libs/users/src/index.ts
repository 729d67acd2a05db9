export { UsersModule } from './users.module';
export { UsersService, normalizeEmail } from './users.service';
export { User } from './user.entity';
export { CreateUserDto, UpdateUserDto, UserView } from './user.dto';
export { ClaimsProvider, ClaimsService, ClaimsContext } from './claims';
export { UserStore, IdpUser, PasswordCheck } from './user-store';
