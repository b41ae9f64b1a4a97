// Hand-written public types of redis-clustr-native (the generated binding.d.ts describes only the
// internal native class). Mirrors index.js: the redis-clustr 1.7.0 surface plus this package's
// additions. The per-command methods come from lib/commands.d.ts, generated from the engine's
// command table by scripts/gen-command-types.js.
//
// The class takes one type parameter, B: the type of bulk replies. It is `string` by default;
// with `return_buffers: true` write `new RedisClustr<Buffer>(...)`, with `detect_buffers: true`
// `new RedisClustr<string | Buffer>(...)` (the options are checked against it).

import { EventEmitter } from 'events';
import { Commands, AsyncCommands } from './lib/commands';

declare namespace RedisClustr {
  type Arg = string | number | bigint | Buffer | Uint8Array;
  /** Any reply (B: the bulk-string type): what a command without a specific type answers. */
  type Reply<B = string | Buffer> = B | string | number | null | Error | Reply<B>[];
  type Callback<T = Reply> = (err: RedisError | null, reply: T) => void;

  /** A command method in node_redis's argument forms; the callback is optional. */
  interface Method<R, T> {
    /** (a, b, c, cb) — a trailing undefined is the callback's slot, as in node_redis. */
    (...args: [...Arg[], Callback<T> | undefined]): R;
    (...args: Arg[]): R;
    /** ([a, b, c], cb) */
    (args: Arg[], cb?: Callback<T>): R;
    /** (key, [b, c], cb) */
    (first: Arg, rest: Arg[], cb?: Callback<T>): R;
  }
  /** hmset / hset also take (key, {field: value}, cb). */
  interface HashMethod<R, T> extends Method<R, T> {
    (key: Arg, fields: { [field: string]: Arg }, cb?: Callback<T>): R;
  }
  /** `<name>Async`: the same argument forms without the callback. */
  interface AsyncMethod<T> {
    (...args: Arg[]): Promise<T>;
    (args: Arg[]): Promise<T>;
    (first: Arg, rest: Arg[]): Promise<T>;
  }
  interface HashAsyncMethod<T> extends AsyncMethod<T> {
    (key: Arg, fields: { [field: string]: Arg }): Promise<T>;
  }

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

  interface BaseRedisOptions {
    password?: string;
    auth_pass?: string;
    user?: string;
    username?: string;
    connect_timeout?: number;
    /** TLS for every connection (Node's option names); `true` = verify against Mozilla's roots. */
    tls?: boolean | TlsOptions;
    /**
     * Put in front of every key argument (not channels, ARGV, SCAN/KEYS patterns or replies);
     * commands route by the prefixed key. A string is taken as UTF-8.
     */
    prefix?: string | Buffer;
  }

  /**
   * node_redis options honoured natively. `return_buffers` / `detect_buffers` must match the
   * client's type parameter B, so reply types stay true: RedisClustr<Buffer> needs
   * `return_buffers: true`, plain RedisClustr (B = string) allows neither.
   */
  type RedisOptions<B extends string | Buffer = string> = BaseRedisOptions &
    ([B] extends [string]
      ? { return_buffers?: false; detect_buffers?: false }
      : [B] extends [Buffer]
        ? { return_buffers: true; detect_buffers?: boolean }
        : { return_buffers?: boolean; detect_buffers?: boolean });

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

  /** The constructor's config; B is the client's bulk-reply type (see RedisOptions). */
  type Config<B extends string | Buffer = string> = BaseConfig &
    ([B] extends [string] ? { redisOptions?: RedisOptions<B> } : { redisOptions: RedisOptions<B> });

  interface BaseConfig {
    servers: ServerAddress[];
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
    /** µs the JS thread stays awake for the reply after a lone command it wrote (default 200, at most 1000; 0: never). */
    spinMicros?: number;
    /** Commands awaiting a reply at once; beyond it QUEUE_FULL at the call. */
    maxInFlight?: number;
    /** Encoded bytes of commands awaiting a reply; beyond it QUEUE_FULL at the call. */
    maxQueueBytes?: number;
    /** Where to dial an announced address: a table keyed "host:port", or a function (null: as announced). */
    natMap?: { [announced: string]: { host: string; port: number } } | ((announced: string) => { host: string; port: number } | null | undefined);
  }

  /** A node of the map; its command methods are pinned to that node (no routing). */
  interface NodeHandle<B extends string | Buffer = string> extends Commands<NodeHandle<B>, B> {
    address: string;
    host: string;
    port: number;
    master: boolean;
    ready: boolean;
    connected: boolean;
    send_command(name: string, args?: Arg[], cb?: Callback<Reply<B>>): this;
    sendCommand(name: string, args?: Arg[], cb?: Callback<Reply<B>>): this;
    quit(cb?: Callback<'OK'>): boolean;
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
    /** Spins after a lone command that ended on an event (normally its reply); see spinMicros. */
    spinHits: number;
    /** Spins that reached spinMicros without one. */
    spinMisses: number;
  }

  type QueuedCommand = { name: string; args: Arg[]; cb?: Callback<any> };

  /** A real MULTI/EXEC (transaction() / multi({atomic: true})); commands chain. */
  interface Transaction<B extends string | Buffer = string> extends Commands<Transaction<B>, B> {
    queue: QueuedCommand[];
    /** err: EXECABORT or CROSSSLOT; replies hold an Error for each command that failed when run. */
    exec(cb?: (err: RedisError | null, replies: Reply<B>[] | null) => void): this;
    execAsync(): Promise<Reply<B>[]>;
    send_command(name: string, args?: Arg[], cb?: Callback<Reply<B>>): this;
  }

  /**
   * A WATCH session (client.watch): commands run at once on a connection of its own; multi()
   * queues the transaction, whose exec answers null when a watched key changed.
   */
  interface WatchSession<B extends string | Buffer = string>
    extends Omit<Commands<WatchSession<B>, B>, 'watch' | 'WATCH' | 'unwatch' | 'UNWATCH' | 'multi'>,
      Omit<AsyncCommands<B>, 'watchAsync' | 'WATCHAsync' | 'unwatchAsync' | 'UNWATCHAsync'> {
    /** True once exec, unwatch, end or a failure ended the session. */
    ended: boolean;
    /** The transaction, sent as MULTI … EXEC on this session by exec (which ends the session). */
    multi(): WatchTransaction<B>;
    transaction(): WatchTransaction<B>;
    unwatch(cb?: Callback<'OK'>): this;
    UNWATCH(cb?: Callback<'OK'>): this;
    unwatchAsync(): Promise<'OK'>;
    UNWATCHAsync(): Promise<'OK'>;
    /** Closes the session's connection once what was sent on it is answered. */
    end(): void;
    send_command(name: string, args?: Arg[], cb?: Callback<Reply<B>>): this;
  }

  /** A WATCH session's transaction: exec's replies are null when a watched key changed. */
  interface WatchTransaction<B extends string | Buffer = string> extends Commands<WatchTransaction<B>, B> {
    queue: QueuedCommand[];
    exec(cb?: (err: RedisError | null, replies: Reply<B>[] | null) => void): this;
    execAsync(): Promise<Reply<B>[] | null>;
    send_command(name: string, args?: Arg[], cb?: Callback<Reply<B>>): this;
  }

  /** redis-clustr's batch() / multi() (not atomic); commands chain. */
  interface Batch<B extends string | Buffer = string> extends Commands<Batch<B>, B> {
    queue: QueuedCommand[];
    /** Replies in the caller's order; a failed command's slot holds its Error. */
    exec(cb?: (errors: RedisError[] | null, replies: Reply<B>[]) => void): this;
    execAsync(): Promise<Reply<B>[]>;
    send_command(name: string, args?: Arg[], cb?: Callback<Reply<B>>): this;
  }
}

declare class RedisClustr<B extends string | Buffer = string> extends EventEmitter {
  /** A bare array of servers is a config without redisOptions (so only for B = string). */
  constructor(config: RedisClustr.Config<B> | ([B] extends [string] ? RedisClustr.ServerAddress[] : never));

  /** 16384 entries once ready: [master, ...replicas]. */
  slots: RedisClustr.NodeHandle<B>[][];
  connections: { [address: string]: RedisClustr.NodeHandle<B> };
  /** The constructor's config, passwords redacted. (It hides the `config` command: use CONFIG.) */
  config: RedisClustr.Config<B>;
  ready: boolean;
  connected: boolean;
  fullReady: boolean;
  quitting: boolean;
  subscriptions: { channels: string[]; patterns: string[]; shardChannels: string[] };

  static keySlot(key: string | Buffer): number;

  send_command(name: string, args?: RedisClustr.Arg[], cb?: RedisClustr.Callback<RedisClustr.Reply<B>>): this;
  send_command(name: string, cb?: RedisClustr.Callback<RedisClustr.Reply<B>>): this;
  sendCommand(name: string, args?: RedisClustr.Arg[], cb?: RedisClustr.Callback<RedisClustr.Reply<B>>): this;
  sendCommand(name: string, cb?: RedisClustr.Callback<RedisClustr.Reply<B>>): this;
  send_commandAsync(name: string, args?: RedisClustr.Arg[]): Promise<RedisClustr.Reply<B>>;
  sendCommandAsync(name: string, args?: RedisClustr.Arg[]): Promise<RedisClustr.Reply<B>>;
  batch(commands?: (string | RedisClustr.Arg)[][]): RedisClustr.Batch<B>;
  /** Like redis-clustr, not atomic; `multi({atomic: true})` is a transaction. */
  multi(commands?: (string | RedisClustr.Arg)[][]): RedisClustr.Batch<B>;
  multi(options: { atomic: true }): RedisClustr.Transaction<B>;
  /** A real MULTI/EXEC on the node owning the one slot all its keys share. */
  transaction(commands?: (string | RedisClustr.Arg)[][]): RedisClustr.Transaction<B>;
  /** WATCH on a connection of the transaction's own (keys share one slot); see WatchSession. */
  watch(...args: [...keys: RedisClustr.Arg[], cb: (err: RedisClustr.RedisError | null, session: RedisClustr.WatchSession<B>) => void]): this;
  WATCH(...args: [...keys: RedisClustr.Arg[], cb: (err: RedisClustr.RedisError | null, session: RedisClustr.WatchSession<B>) => void]): this;
  watchAsync(...keys: RedisClustr.Arg[]): Promise<RedisClustr.WatchSession<B>>;
  WATCHAsync(...keys: RedisClustr.Arg[]): Promise<RedisClustr.WatchSession<B>>;
  /** Cluster-wide SCAN: every key present throughout, exactly once, even while slots move. */
  scanIterator(options?: { match?: string; count?: number; type?: string }): AsyncIterableIterator<B>;
  scanEach(
    options: { match?: string; count?: number; type?: string },
    onKeys: (keys: B[]) => void,
    done?: (err: RedisClustr.RedisError | null) => void
  ): void;
  getSlots(cb: RedisClustr.Callback<RedisClustr.NodeHandle<B>[][]>): void;
  getSlotsAsync(): Promise<RedisClustr.NodeHandle<B>[][]>;
  selectClient(key: RedisClustr.Arg, conf?: { readOnly?: boolean }): RedisClustr.NodeHandle<B> | undefined;
  getRandomConnection(exclude?: string[], forceSlaves?: boolean): RedisClustr.NodeHandle<B> | undefined;
  getClient(port: number, host: string): RedisClustr.NodeHandle<B>;
  onMasters(
    cmd: string,
    args: RedisClustr.Arg[],
    cb: (errors: RedisClustr.RedisError[] | null, reply: RedisClustr.Reply<B>) => void
  ): void;
  quit(cb?: RedisClustr.Callback<'OK'>): this;
  quitAsync(): Promise<'OK'>;
  waitFor(evt: string, already: boolean, cb: (err?: RedisClustr.RedisError) => void): void;
  waitFor(evt: string, cb: (err?: RedisClustr.RedisError) => void): void;
  stats(): RedisClustr.Stats;

  on(event: 'connect' | 'ready' | 'fullReady' | 'disconnect' | 'end', listener: () => void): this;
  on(event: 'error', listener: (err: RedisClustr.RedisError) => void): this;
  on(event: 'connectionError', listener: (err: RedisClustr.RedisError, node: RedisClustr.NodeHandle<B>) => void): this;
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
}

// Every command of the table, lowercase and UPPERCASE, with its promise twin (lib/commands.d.ts).
// `config` is the redacted config property, as in redis-clustr, so the command is CONFIG there.
interface RedisClustr<B extends string | Buffer = string>
  extends Omit<Commands<RedisClustr<B>, B>, 'config' | 'watch' | 'WATCH'>,
    Omit<AsyncCommands<B>, 'watchAsync' | 'WATCHAsync'> {}

export = RedisClustr;
