import { DiscoveryService } from '@nestjs/core';

export interface RegistryOptions {
  /** Replace a built-in registered under the same name instead of failing at boot. */
  override?: boolean;
}

/**
 * Builds a name -> provider map from providers carrying a discoverable decorator. Two providers
 * claiming one name fail at boot, naming both, unless the later one says `{ override: true }`.
 */
export function buildRegistry<T extends object>(
  discovery: DiscoveryService,
  decorator: ReturnType<typeof DiscoveryService.createDecorator<{ name: string } & RegistryOptions>>,
  kind: string,
): Map<string, T> {
  const found = new Map<string, { instance: T; override: boolean }>();
  for (const wrapper of discovery.getProviders({ metadataKey: decorator.KEY })) {
    const meta = discovery.getMetadataByDecorator(decorator, wrapper);
    if (!meta || !wrapper.instance) continue;
    if (!wrapper.isDependencyTreeStatic()) {
      throw new Error(`${kind} "${meta.name}" (${wrapper.name}) must be a singleton provider`);
    }
    const existing = found.get(meta.name);
    if (existing && !meta.override && !existing.override) {
      throw new Error(
        `two ${kind}s claim the name "${meta.name}": ${existing.instance.constructor.name} and ${(wrapper.instance as object).constructor.name}; ` +
          `remove one or mark the replacement { override: true }`,
      );
    }
    if (!existing || meta.override) found.set(meta.name, { instance: wrapper.instance as T, override: !!meta.override });
  }
  return new Map([...found].map(([k, v]) => [k, v.instance]));
}
