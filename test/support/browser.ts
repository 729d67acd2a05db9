/**
 * A minimal browser for end-to-end tests: a cookie jar, manual redirects, and HTML forms read the
 * way a person's browser would submit them (hidden fields kept). No JavaScript, like the pages.
 */
export interface Page {
  url: string;
  status: number;
  headers: Headers;
  html: string;
}

export interface Form {
  action: string;
  method: string;
  fields: Record<string, string>;
  /** Submit buttons: name -> values. */
  buttons: { name: string; value: string }[];
}

export class Browser {
  readonly cookies = new Map<string, string>();
  /** Headers sent with every request (e.g. an `X-Request-Id`), besides the cookies. */
  readonly headers: Record<string, string> = {};

  constructor(private readonly origin: string) {}

  /** Follows redirects on our origin; stops at the first page, or at a redirect leaving the origin. */
  async go(url: string, init: RequestInit = {}): Promise<Page> {
    let current = new URL(url, this.origin).toString();
    let req: RequestInit = init;
    for (let hops = 0; hops < 20; hops++) {
      const res = await fetch(current, { ...req, redirect: 'manual', headers: { ...this.headers, ...(req.headers as Record<string, string>), cookie: this.cookieHeader() } });
      this.store(res.headers);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        const next = new URL(location, current).toString();
        if (!next.startsWith(this.origin)) return { url: next, status: res.status, headers: res.headers, html: '' };
        current = next;
        req = {};
        continue;
      }
      return { url: current, status: res.status, headers: res.headers, html: await res.text() };
    }
    throw new Error('too many redirects');
  }

  /** Submits a form of the page, with extra field values and optionally a submit button. */
  submit(page: Page, form: Form, values: Record<string, string> = {}, button?: { name: string; value: string }): Promise<Page> {
    const body = new URLSearchParams({ ...form.fields, ...values, ...(button ? { [button.name]: button.value } : {}) });
    return this.go(new URL(form.action || page.url, page.url).toString(), {
      method: form.method.toUpperCase(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
  }

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Raw Set-Cookie lines of the last responses, for attribute checks. */
  readonly setCookies: string[] = [];

  private store(headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

const decode = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The forms of a page with their fields, as a browser sees them. */
export function forms(html: string): Form[] {
  const out: Form[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = m[1];
    const form: Form = {
      action: decode(/action="([^"]*)"/i.exec(attrs)?.[1] ?? ''),
      method: /method="([^"]*)"/i.exec(attrs)?.[1] ?? 'get',
      fields: {},
      buttons: [],
    };
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const name = /name="([^"]*)"/i.exec(input[1])?.[1];
      if (!name) continue;
      form.fields[decode(name)] = decode(/value="([^"]*)"/i.exec(input[1])?.[1] ?? '');
    }
    for (const b of m[2].matchAll(/<button\b([^>]*)>/gi)) {
      const name = /name="([^"]*)"/i.exec(b[1])?.[1];
      if (name) form.buttons.push({ name: decode(name), value: decode(/value="([^"]*)"/i.exec(b[1])?.[1] ?? '') });
    }
    out.push(form);
  }
  return out;
}

/** Logs in on the login page and answers the consent page if one comes: returns where the browser lands. */
export async function signIn(browser: Browser, authorizeUrl: string, user: { email: string; password: string }, consent: 'allow' | 'deny' = 'allow'): Promise<Page> {
  let page = await browser.go(authorizeUrl);
  if (page.url.includes('/login')) {
    const [form] = forms(page.html);
    page = await browser.submit(page, form, { username: user.email, password: user.password });
  }
  if (page.url.includes('/consent')) {
    const [form] = forms(page.html);
    if (!form) throw new Error(`no consent form (HTTP ${page.status}): ${page.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
    page = await browser.submit(page, form, {}, form.buttons.find((b) => b.name === 'decision' && b.value === consent));
  }
  return page;
}
