// Pure (no Node imports): used by workflows as well as by the API and the activities.

/** The failure types (ApplicationFailure `type`) that workflows and the API act on. */
export const FailureType = {
  NoProxyCapacity: 'NoProxyCapacity',
  ProxyOverrideRefused: 'ProxyOverrideRefused',
  NoDeviceProfile: 'NoDeviceProfile',
  /** The auth folder belongs to another tenant (the API answers 409, naming no one). */
  AuthOwnedElsewhere: 'AuthOwnedElsewhere',
  PhoneConflict: 'PhoneConflict',
  ProxyGone: 'ProxyGone',
  CommandFailed: 'CommandFailed',
} as const;

/**
 * What a Temporal failure says: the type, message and first detail of the ApplicationFailure that an activity,
 * a child workflow or an update handler raised, which the SDK wraps (ActivityFailure, ChildWorkflowFailure,
 * WorkflowUpdateFailedError, WorkflowFailedError) as `cause`.
 */
export function failureOf(err: unknown): { type?: string; message: string; details?: unknown } {
  const e = err as {
    cause?: { type?: string; message?: string; details?: unknown[] };
    type?: string;
    message?: string;
  };
  return {
    type: e?.cause?.type ?? e?.type,
    message: e?.cause?.message ?? e?.message ?? String(err),
    details: e?.cause?.details?.[0],
  };
}
