import Testing
@testable import Madoguchi

@Suite("Splitting SQL files into statements")
struct SQLScriptTests {
    @Test("semicolons end statements; blank and comment-only pieces are dropped")
    func plain() {
        #expect(SQLScript.statements(in: "CREATE TABLE a (id int);\n\n-- done\nCREATE TABLE b (id int);\n-- trailing\n") == [
            "CREATE TABLE a (id int)", "-- done\nCREATE TABLE b (id int)",
        ])
        #expect(SQLScript.statements(in: "  ;; -- nothing\n /* at all */ ").isEmpty)
    }

    @Test("semicolons inside strings, identifiers and comments do not split")
    func quoted() throws {
        let script = """
            INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\\'s; slash');
            SELECT "odd;name" FROM t; -- a comment; with a semicolon
            /* block; /* nested; */ still comment; */ SELECT 2;
            """
        let statements = SQLScript.statements(in: script)
        try #require(statements.count == 3)
        #expect(statements[0] == #"INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\'s; slash')"#)
        #expect(statements[1] == #"SELECT "odd;name" FROM t"#)
        #expect(statements[2].hasSuffix("SELECT 2"))
    }

    @Test("dollar-quoted bodies stay whole; $1 is not a delimiter")
    func dollarQuoted() throws {
        let script = """
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'no; way';
            END;
            $$;
            DO $body$ BEGIN PERFORM 1; END $body$;
            PREPARE p AS SELECT $1::int;
            """
        let statements = SQLScript.statements(in: script)
        try #require(statements.count == 3)
        #expect(statements[0].hasSuffix("END;\n$$"))
        #expect(statements[1] == "DO $body$ BEGIN PERFORM 1; END $body$")
        #expect(statements[2] == "PREPARE p AS SELECT $1::int")
    }

    @Test("an unterminated string swallows the rest rather than splitting inside it")
    func unterminated() {
        #expect(SQLScript.statements(in: "SELECT 'open; SELECT 2;") == ["SELECT 'open; SELECT 2;"])
    }
}
