-- Chat messages find their conversation's ticket by the provider's conversation id.
CREATE INDEX messages_chat_conversation ON messages (provider, (metadata->>'conversation_id'), created_at DESC)
    WHERE channel = 'chat' AND direction = 'inbound';
