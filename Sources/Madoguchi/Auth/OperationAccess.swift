/// Which roles may call each operation. The same lists appear as `x-madoguchi-roles` in openapi.yaml,
/// for callers to read; a unit test keeps the two in step. An operation missing here is refused to
/// everyone, so forgetting an entry fails closed.
enum OperationAccess {
    static let publicOperations: Set<String> = ["getLive", "getReady", "getMetrics", "getOpenAPIDocument"]

    /// Provider webhooks: the provider cannot send our API key, so its signature over the request is
    /// the credential, and the handler refuses (403) what it cannot verify.
    static let providerSignedOperations: Set<String> = ["ingestSmsWebhook", "ingestSmsStatusWebhook", "ingestChatWebhook"]

    static let roles: [String: Set<Role>] = [
        "getCurrentPrincipal": Set(Role.allCases),
        "listApiKeys": [.admin],
        "createApiKey": [.admin],
        "revokeApiKey": [.admin],
        "ingestEmail": [.gateway],
        "ingestWebform": [.gateway],
        "ingestSms": [.gateway],
        "ingestChat": [.gateway],
        "getInboundPayload": [.gateway, .supervisor, .admin],
        "reprocessInboundPayload": [.supervisor, .admin],
        "getCustomer": [.agent, .supervisor, .dashboard, .orderSystem],
        "findCustomers": [.agent, .supervisor, .orderSystem],
        "createCustomer": [.supervisor, .orderSystem],
        "updateCustomer": [.supervisor, .orderSystem],
        "addCustomerIdentity": [.supervisor, .orderSystem],
        "mergeCustomer": [.supervisor],
        "getCustomerTimeline": [.agent, .supervisor, .orderSystem],
        "listTickets": [.agent, .supervisor, .dashboard],
        "getTicket": [.agent, .supervisor, .dashboard],
        "listTicketMessages": [.agent, .supervisor],
        "updateTicket": [.agent, .supervisor],
        "claimTicket": [.agent, .supervisor],
        "releaseClaim": [.agent, .supervisor],
        "claimNextTicket": [.agent, .supervisor],
        "addNote": [.agent, .supervisor],
        "createReply": [.agent, .supervisor],
        "getReply": [.agent, .supervisor],
        "updateReply": [.agent, .supervisor],
        "sendReply": [.agent, .supervisor],
        "submitReply": [.agent, .supervisor],
        "approveReply": [.supervisor],
        "returnReply": [.supervisor],
        "addReplyAttachment": [.agent, .supervisor],
        "resolveReplyDelivery": [.supervisor],
        "listTemplates": [.agent, .supervisor],
        "getTemplate": [.agent, .supervisor],
        "createTemplate": [.supervisor],
        "updateTemplate": [.supervisor],
        "renderTemplate": [.agent, .supervisor],
        "listRules": [.agent, .supervisor],
        "createRule": [.supervisor],
        "updateRule": [.supervisor],
    ]
}
