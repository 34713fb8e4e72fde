/** What a stream answered to an acknowledged publish. */
export interface PublishResult {
  readonly seq: number;
  /** True when JetStream had already stored a message with this msgID (a safe re-publish). */
  readonly duplicate: boolean;
}
