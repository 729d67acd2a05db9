// The DataSource for the TypeORM CLI (`npm run migration:run`, `migration:generate`), built by the
// same function as the server's, from the same DATABASE_URL.
import { DataSource } from 'typeorm';
import { loadConfig } from '@idp/core';
import { dataSourceOptions } from '@idp/identity';

export default new DataSource(dataSourceOptions(loadConfig().databaseUrl));
