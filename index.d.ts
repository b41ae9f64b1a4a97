// Hand-written public types of redis-clustr-native (the generated binding.d.ts describes only the
// internal native class). Mirrors index.js: the redis-clustr 1.7.0 surface plus this package's
// additions.

import { EventEmitter } from 'events';

declare namespace RedisClustr {
  type Arg = string | number | bigint | Buffer | Uint8Array;
  type Reply = string | number | null | Buffer | Error | Reply[];
  type Callback<T = any> = (err: RedisError | null, reply: T) => void;

  interface RedisError extends Error {
    /** Server error code (first word: WRONGTYPE, CROSSSLOT, ...) or a client code (SPEC §3). */
    code: string;
    /** The command, uppercase. */
    command?: string;
    args?: Arg[];
    /** NO_SLOT_MAP: what each seed said. */
    errors?: RedisError[];
    /** connectionError: the node's "host:port". */
    address?: string;
  }

  interface ServerAddress {
    host: string;
    port: number;
  }

  interface RedisOptions {
    password?: string;
    auth_pass?: string;
    user?: string;
    username?: string;
    return_buffers?: boolean;
    detect_buffers?: boolean;
    connect_timeout?: number;
    /** TLS for every connection (Node's option names); `true` = verify against Mozilla's roots. */
    tls?: boolean | TlsOptions;
  }

  type Pem = string | Buffer | Array<string | Buffer>;

  interface TlsOptions {
    /** Trusted CAs; replaces the default roots when given. */
    ca?: Pem;
    /** Client certificate chain (servers with `tls-auth-clients yes`). */
    cert?: Pem;
    /** Unencrypted PEM private key of `cert`. */
    key?: Pem;
    /** Name to verify and send as SNI instead of each node's host. */
    servername?: string;
    /** false accepts any certificate (testing only; warns once). Default true. */
    rejectUnauthorized?: boolean;
  }

  interface Config {
    servers: ServerAddress[];
    redisOptions?: RedisOptions;
    /** Factory of node_redis clients (one per node, given redisOptions) that then carry the traffic. */
    createClient?: (port: number, host: string, options: RedisOptions) => unknown;
    /** ms between periodic slot-map refreshes (a 10 s safety refresh runs otherwise). */
    slotInterval?: number;
    /** Max commands waiting for the first slot map. */
    maxQueueLength?: number;
    /** When that queue is full: true errors the oldest waiter (default), false the new one. */
    queueShift?: boolean;
    /** ms queued commands wait for a slot map after discovery failed (default: fail at once). */
    wait?: number;
    /** Read-only commands: 'never' (default) masters, 'share' masters+replicas, 'always' replicas. */
    slaves?: 'never' | 'share' | 'always';
    /** Max MOVED/ASK hops per command (default 16). */
    maxRedirections?: number;
    /** ms a command may spend retrying TRYAGAIN/CLUSTERDOWN/LOADING/lost connections (default 5000). */
    retryBudget?: number;
    /** ms: one deadline per command over queueing, redirections and retries (TIMEOUT after). */
    commandTimeout?: number;
    /** Commands awaiting a reply at once; beyond it QUEUE_FULL at the call. */
    maxInFlight?: number;
    /** Encoded bytes of commands awaiting a reply; beyond it QUEUE_FULL at the call. */
    maxQueueBytes?: number;
  }

  interface NodeHandle {
    address: string;
    host: string;
    port: number;
    master: boolean;
    ready: boolean;
    connected: boolean;
    send_command(name: string, args?: Arg[], cb?: Callback): this;
    sendCommand(name: string, args?: Arg[], cb?: Callback): this;
    quit(cb?: Callback<'OK'>): boolean;
    [command: string]: any;
  }

  interface TopologyChange {
    added: string[];
    removed: string[];
    movedRanges: { first: number; last: number; to: string }[];
  }

  interface Stats {
    moved: number;
    ask: number;
    retries: number;
    refreshes: number;
    slotPatches: number;
  }

  interface Transaction {
    queue: { name: string; args: Arg[]; cb?: Callback }[];
    /** err: EXECABORT or CROSSSLOT; replies hold an Error for each command that failed when run. */
    exec(cb?: (err: RedisError | null, replies: Reply[] | null) => void): this;
    execAsync(): Promise<Reply[]>;
    send_command(name: string, args?: Arg[], cb?: Callback): this;
    [command: string]: any;
  }

  interface Batch {
    queue: { name: string; args: Arg[]; cb?: Callback }[];
    exec(cb?: (errors: RedisError[] | null, replies: Reply[]) => void): this;
    execAsync(): Promise<Reply[]>;
    send_command(name: string, args?: Arg[], cb?: Callback): this;
    [command: string]: any;
  }
}

declare class RedisClustr extends EventEmitter {
  constructor(config: RedisClustr.Config | RedisClustr.ServerAddress[]);

  /** 16384 entries once ready: [master, ...replicas]. */
  slots: RedisClustr.NodeHandle[][];
  connections: { [address: string]: RedisClustr.NodeHandle };
  config: RedisClustr.Config;
  ready: boolean;
  connected: boolean;
  fullReady: boolean;
  quitting: boolean;
  subscriptions: { channels: string[]; patterns: string[]; shardChannels: string[] };

  static keySlot(key: string | Buffer): number;

  send_command(name: string, args?: RedisClustr.Arg[], cb?: RedisClustr.Callback): this;
  sendCommand(name: string, args?: RedisClustr.Arg[], cb?: RedisClustr.Callback): this;
  batch(commands?: (string | RedisClustr.Arg)[][]): RedisClustr.Batch;
  /** Like redis-clustr, not atomic; `multi({atomic: true})` is a transaction. */
  multi(commands?: (string | RedisClustr.Arg)[][]): RedisClustr.Batch;
  multi(options: { atomic: true }): RedisClustr.Transaction;
  /** A real MULTI/EXEC on the node owning the one slot all its keys share. */
  transaction(commands?: (string | RedisClustr.Arg)[][]): RedisClustr.Transaction;
  subscribe(...args: any[]): this;
  psubscribe(...args: any[]): this;
  ssubscribe(...args: any[]): this;
  unsubscribe(...args: any[]): this;
  punsubscribe(...args: any[]): this;
  sunsubscribe(...args: any[]): this;
  publish(channel: RedisClustr.Arg, message: RedisClustr.Arg, cb?: RedisClustr.Callback<number>): this;
  publishAsync(channel: RedisClustr.Arg, message: RedisClustr.Arg): Promise<number>;
  /** Cluster-wide SCAN: every key present throughout, exactly once, even while slots move. */
  scanIterator(options?: { match?: string; count?: number; type?: string }): AsyncIterableIterator<string | Buffer>;
  scanEach(
    options: { match?: string; count?: number; type?: string },
    onKeys: (keys: (string | Buffer)[]) => void,
    done?: (err: RedisClustr.RedisError | null) => void
  ): void;
  getSlots(cb: RedisClustr.Callback<RedisClustr.NodeHandle[][]>): void;
  selectClient(key: RedisClustr.Arg, conf?: { readOnly?: boolean }): RedisClustr.NodeHandle | undefined;
  getRandomConnection(exclude?: string[], forceSlaves?: boolean): RedisClustr.NodeHandle | undefined;
  getClient(port: number, host: string): RedisClustr.NodeHandle;
  onMasters(cmd: string, args: RedisClustr.Arg[], cb: (errors: RedisClustr.RedisError[] | null, reply: any) => void): void;
  quit(cb?: RedisClustr.Callback<'OK'>): this;
  quitAsync(): Promise<'OK'>;
  waitFor(evt: string, already: boolean, cb: (err?: RedisClustr.RedisError) => void): void;
  waitFor(evt: string, cb: (err?: RedisClustr.RedisError) => void): void;
  stats(): RedisClustr.Stats;

  get(key: RedisClustr.Arg, cb?: RedisClustr.Callback<string | Buffer | null>): this;
  getAsync(key: RedisClustr.Arg): Promise<string | Buffer | null>;
  set(key: RedisClustr.Arg, value: RedisClustr.Arg, ...rest: any[]): this;
  setAsync(key: RedisClustr.Arg, value: RedisClustr.Arg, ...rest: RedisClustr.Arg[]): Promise<'OK' | null>;
  hgetall(key: RedisClustr.Arg, cb?: RedisClustr.Callback<{ [field: string]: string | Buffer } | null>): this;
  hmset(key: RedisClustr.Arg, fields: { [field: string]: RedisClustr.Arg }, cb?: RedisClustr.Callback<'OK'>): this;

  on(event: 'connect' | 'ready' | 'fullReady' | 'disconnect' | 'end', listener: () => void): this;
  on(event: 'error', listener: (err: RedisClustr.RedisError) => void): this;
  on(event: 'connectionError', listener: (err: RedisClustr.RedisError, node: RedisClustr.NodeHandle) => void): this;
  on(event: 'topology', listener: (change: RedisClustr.TopologyChange) => void): this;
  on(event: 'message' | 'smessage', listener: (channel: string | Buffer, message: string | Buffer) => void): this;
  on(event: 'pmessage', listener: (pattern: string | Buffer, channel: string | Buffer, message: string | Buffer) => void): this;
  on(
    event: 'subscribe' | 'unsubscribe' | 'psubscribe' | 'punsubscribe' | 'ssubscribe' | 'sunsubscribe',
    listener: (channel: string | Buffer, count: number) => void
  ): this;
  on(
    event: 'resubscribed',
    listener: (info: { channels: string[]; patterns: string[]; shardChannels: string[]; from: number; to: number; node: string }) => void
  ): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;

  /** Every other command, lowercase or UPPERCASE, with node_redis argument forms. */
  [command: string]: any;
}

export = RedisClustr;
