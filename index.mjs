// ESM entry (`import RedisClustr from 'redis-clustr-native'`): re-exports the one CommonJS
// implementation, so `import` and `require` give the very same class (no dual-package hazard).
import RedisClustr from './index.js';

export default RedisClustr;
export const RedisCluster = RedisClustr.RedisCluster;
export const keySlot = RedisClustr.keySlot;
export { RedisClustr };
