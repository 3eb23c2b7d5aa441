// Every way a CommonJS-compiled TypeScript file can load the package gives
// the same class, with its types.

import CacheModule = require('@fluxor/cache-module');
import Default from '@fluxor/cache-module';
import { CacheModule as Named, default as AlsoDefault } from '@fluxor/cache-module';
import type { CacheOptions, CacheError, ErrorCode, Lock, Stats } from '@fluxor/cache-module';

const classes: Array<typeof CacheModule> = [Default, Named, AlsoDefault, CacheModule.CacheModule, CacheModule.default];
const options: CacheOptions = { keyPrefix: 'imports:' };
const instances: CacheModule[] = classes.map((C) => new C(options));
const asNamed: Named = new Default();
const asDefault: Default = new Named();
const code: ErrorCode = 'ERR_TIMEOUT';
export type Seen = [CacheError, Lock, Stats];
export { instances, asNamed, asDefault, code };
