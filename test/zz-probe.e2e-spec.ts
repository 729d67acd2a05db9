import { startServer, basic } from './support/server';
it('probe', async () => {
  const s = await startServer();
  const show = async (label: string, p: Promise<Response>) => { const r = await p; console.log(label, r.status, JSON.stringify([...r.headers]), (await r.text()).slice(0, 600)); };
  try {
    console.log(JSON.stringify(await s.admin('POST', '/admin/clients', { client_name: 'x' })));
    console.log(JSON.stringify(await s.admin('POST', '/admin/clients', { client_name: 'x', grant_types: ['client_credentials'], redirect_uris: ['http://evil.example.com/cb'] })));
    const d = await (await s.fetch('/.well-known/openid-configuration')).json(); console.log(d.grant_types_supported);
    await show('nul user', s.fetch('/admin/users/%00', { headers: { authorization: `Bearer ${await s.adminToken()}` } }));
    await show('nul email', s.fetch('/admin/users?email=%00', { headers: { authorization: `Bearer ${await s.adminToken()}` } }));
    await show('nul client', s.fetch('/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&client_id=%00&client_secret=x' }));
    await show('array body', s.fetch('/admin/users', { method: 'POST', headers: { authorization: `Bearer ${await s.adminToken()}`, 'content-type': 'application/json' }, body: '[{"email":"a@b.co","password":"12345678"}]' }));
    await show('proto', s.fetch('/admin/users', { method: 'POST', headers: { authorization: `Bearer ${await s.adminToken()}`, 'content-type': 'application/json' }, body: '{"email":"a@b.co","password":"12345678","__proto__":{"x":1}}' }));
    await show('big', s.fetch('/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=' + 'x'.repeat(1024 * 1024) }));
    await show('bigadmin', s.fetch('/admin/users', { method: 'POST', headers: { authorization: `Bearer ${await s.adminToken()}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(1024 * 1024) }) }));
    await show('openapi', s.fetch('/admin/openapi.json'));
  } finally { await s.close(); }
});
