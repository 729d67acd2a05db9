/** Thrown by a guard that must send the browser elsewhere (login, consent): rendered as a 303 redirect. */
export class PageRedirect extends Error {
  constructor(public readonly location: string) {
    super('redirect');
    this.name = 'PageRedirect';
  }
}
