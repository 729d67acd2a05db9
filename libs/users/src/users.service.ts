import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { Clock, IdpEvents, Page, PageRequest, isUniqueViolation, toPage, uuidv7, RequestContext } from '@idp/core';
import { User } from './user.entity';
import { CreateUserDto, UpdateUserDto, UserView } from './user.dto';
import { dummyHash, hashPassword, verifyPassword } from './password';
import { PasswordCheck, UserStore } from './user-store';

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

const RECENT_MS = 1_000;

@Injectable()
export class UsersService implements UserStore {
  private readonly recent = new Map<string, { at: number; user: User | null }>();

  constructor(@InjectRepository(User) private readonly users: Repository<User>, private readonly events: IdpEvents, private readonly clock: Clock) {}

  async create(dto: CreateUserDto, actor?: string, ctx?: RequestContext): Promise<User> {
    const now = this.clock.date();
    const user = this.users.create({
      id: uuidv7(), email: normalizeEmail(dto.email), password_hash: await hashPassword(dto.password),
      name: dto.name ?? null, email_verified: dto.email_verified ?? false, blocked: dto.blocked ?? false,
      created_at: now, updated_at: now,
    });
    try {
      await this.users.insert(user);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictException(['email is already registered']);
      throw err;
    }
    await this.events.emit('user.created', { userId: user.id, actor }, ctx);
    return user;
  }

  async update(id: string, dto: UpdateUserDto, actor?: string, ctx?: RequestContext): Promise<User> {
    const user = await this.get(id);
    const patch: Partial<User> = { updated_at: this.clock.date() };
    if (dto.email !== undefined) patch.email = normalizeEmail(dto.email);
    if (dto.password !== undefined) patch.password_hash = await hashPassword(dto.password);
    if (dto.name !== undefined) patch.name = dto.name;
    if (dto.email_verified !== undefined) patch.email_verified = dto.email_verified;
    if (dto.blocked !== undefined) patch.blocked = dto.blocked;
    try {
      await this.users.update({ id }, patch);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictException(['email is already registered']);
      throw err;
    }
    const { password_hash: _, ...visible } = patch;
    this.recent.delete(id);
    await this.events.emit('user.updated', { userId: id, actor }, ctx);
    return Object.assign(user, visible);
  }

  async remove(id: string, actor?: string, ctx?: RequestContext): Promise<void> {
    const res = await this.users.delete({ id });
    if (!res.affected) throw new NotFoundException([`user ${id} not found`]);
    this.recent.delete(id);
    await this.events.emit('user.deleted', { userId: id, actor }, ctx);
  }

  /**
   * A user by id: read on every token, UserInfo and session request, so kept a second per replica
   * (a change made here is seen at once; a block made on another replica within a second).
   */
  async findById(id: string): Promise<User | null> {
    const hit = this.recent.get(id);
    if (hit && Date.now() - hit.at < RECENT_MS) return hit.user ? { ...hit.user } : null;
    const user = id.length <= 36 && !id.includes('\0') ? await this.users.findOne({ where: { id } }) : null;
    if (this.recent.size >= 10_000) this.recent.clear();
    this.recent.set(id, { at: Date.now(), user });
    return user ? { ...user } : null;
  }

  async get(id: string): Promise<User> {
    const user = await this.findById(id);
    if (!user) throw new NotFoundException([`user ${id} not found`]);
    return user;
  }

  findByEmail(email: string): Promise<User | null> {
    return this.users.findOne({ where: { email: normalizeEmail(email) } });
  }

  async list(req: PageRequest, filter: { email?: string } = {}): Promise<Page<UserView>> {
    const where = { ...(req.after ? { id: MoreThan(req.after) } : {}), ...(filter.email ? { email: normalizeEmail(filter.email) } : {}) };
    const rows = await this.users.find({ where, order: { id: 'ASC' }, take: req.limit + 1 });
    return toPage(rows, req, (u) => u.id, UserView.of);
  }

  /**
   * Checks an email and password. Costs one argon2id verification whether or not the account
   * exists, so neither the answer nor its timing tells an attacker which emails are registered.
   * Returns the user only when the password matches; blocked users are returned with `blocked`
   * set so the caller can refuse them with the same generic message.
   */
  async verifyPassword(email: string, password: string): Promise<User | null> {
    return (await this.checkPassword(email, password)).user as User | null;
  }

  /**
   * verifyPassword, and the account the email names whether or not the password matched (for the
   * audit log): one lookup and one verification, as for an unknown email.
   */
  async checkPassword(email: string, password: string): Promise<PasswordCheck> {
    const user = await this.users
      .createQueryBuilder('u')
      .addSelect('u.password_hash')
      .where('u.email = :email', { email: normalizeEmail(email) })
      .getOne();
    const ok = await verifyPassword(user?.password_hash ?? (await dummyHash()), password);
    if (!user) return { user: null, accountId: null };
    delete (user as Partial<User>).password_hash;
    return { user: ok ? user : null, accountId: user.id };
  }
}
