import Foundation
import MadoguchiAPI
import HTTPTypes
import OpenAPIRuntime

/// Reports over HTTP: JSON by default, CSV streamed when asked (`Accept: text/csv` or `format=csv`).
/// Every number comes from SQL; Swift only turns rows into JSON members or CSV lines.
extension APIHandler {
    var reports: ReportStore { ReportStore(database: reportsDatabase, gate: reportGate, timeout: reportTimeout, logger: logger) }

    /// What a report answers with: CSV already streaming, or every row for JSON.
    enum ReportAnswer {
        case csv(HTTPBody)
        case rows(ReportRequest, [[ReportCell]])
    }

    /// `kind` answered as the request asks; JSON reads `page` of it when given (the breaches).
    func report(_ kind: ReportKind, _ query: some ReportQuery, accept: [(type: String, quality: Double)], page: BreachPage? = nil) async throws -> ReportAnswer {
        var request = try ReportRequest(
            from: query.from, to: query.to, granularity: query.granularity.flatMap { ReportRequest.Granularity(rawValue: $0.rawValue) },
            timeZone: query.timeZone,
            filters: .init(channel: query.channel.flatMap { Channel(rawValue: $0.rawValue) }, queue: query.queue, category: query.category,
                           tag: query.tag, agentID: query.agentId?.uuid, priority: query.priority.flatMap { Ticket.Priority(rawValue: $0.rawValue) }),
            periodic: kind.isPeriodic)
        // Read first: the rows reflect at least the moment it gives.
        let context = try await reports.context()
        if query.timeZone == nil { request.timeZone = context.defaultZone }
        let acceptable = AcceptHeader(ranges: accept)
        let csv = Self.wantsCSV(format: query.format?.rawValue, accept: accept, acceptable: acceptable)
        // format= can ask for what Accept excludes; refused before any work, not after the export began.
        let chosen = csv ? "text/csv" : "application/json"
        guard acceptable.allows(chosen) else {
            // Without format=, either would do: the Accept header excludes both.
            guard let format = query.format?.rawValue else { throw Problem.notAcceptable(offered: ["application/json", "text/csv"]) }
            throw Problem(.notAcceptable, status: .notAcceptable, title: "Not acceptable",
                          detail: "format=\(format) asks for \(chosen), which this request's Accept header excludes; "
                            + "send one of the two, or both asking for the same; nothing was done.")
        }
        // Set beside the generated code, which would percent-encode the colons of a date in a header (as with Link).
        RequestScope.current?.setResponseHeader(.dataAsOf, context.dataAsOf.rfc3339UTC)
        if csv {
            // UTF-8 said outright (Excel and some dashboards guess otherwise), and a file name a browser
            // saves it under: the report and its range.
            RequestScope.current?.setResponseHeader(.contentType, "text/csv; charset=utf-8")
            RequestScope.current?.setResponseHeader(
                .contentDisposition, "attachment; filename=\"madoguchi-\(kind.rawValue)-\(request.from)-\(request.to).csv\"")
            let pipe = try await reports.csv(kind, request, byteOrderMark: query.bom ?? false)
            return .csv(HTTPBody(pipe.reader(), length: .unknown, iterationBehavior: .single))
        }
        if let page { return .rows(request, try await reports.breaches(request, page)) }
        return .rows(request, try await reports.rows(kind, request))
    }

    func getVolumeReport(_ input: Operations.GetVolumeReport.Input) async throws -> Operations.GetVolumeReport.Output {
        switch try await report(.volume, input.query, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                items: rows.map { row in
                    .init(period: row[0].text, periodStart: row[1].time, channel: .init(rawValue: row[2].text)!, newTickets: row[3].integer,
                          inboundMessages: row[4].integer)
                }))))
        }
    }

    func getBacklogReport(_ input: Operations.GetBacklogReport.Input) async throws -> Operations.GetBacklogReport.Output {
        switch try await report(.backlog, input.query, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                items: rows.map { row in
                    .init(period: row[0].text, periodEnd: row[1].time, status: .init(rawValue: row[2].text)!, openTickets: row[3].integer,
                          ageUnder1d: row[4].integer, age1dTo3d: row[5].integer, age3dTo7d: row[6].integer,
                          age7dTo30d: row[7].integer, ageOver30d: row[8].integer)
                }))))
        }
    }

    func getResponseTimesReport(_ input: Operations.GetResponseTimesReport.Input) async throws -> Operations.GetResponseTimesReport.Output {
        switch try await report(.responseTimes, input.query, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                items: rows.map { row in
                    .init(period: row[0].text, periodStart: row[1].time, metric: .init(rawValue: row[2].text)!, count: row[3].integer,
                          wallMedianSeconds: row[4].number, wallP90Seconds: row[5].number, wallMeanSeconds: row[6].number,
                          businessMedianSeconds: row[7].number, businessP90Seconds: row[8].number, businessMeanSeconds: row[9].number)
                }))))
        }
    }

    func getAgentsReport(_ input: Operations.GetAgentsReport.Input) async throws -> Operations.GetAgentsReport.Output {
        switch try await report(.agents, input.query, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                items: rows.map { row in
                    .init(agentId: UUID(uuidString: row[0].text)!.resourceID, agentName: row[1].text, ticketsHandled: row[2].integer,
                          repliesSent: row[3].integer, notes: row[4].integer, firstResponses: row[5].integer,
                          firstResponseMedianBusinessSeconds: row[6].number, firstResponseMedianWallSeconds: row[7].number,
                          solved: row[8].integer, reopened: row[9].integer, reopenRate: row[10].number, approvalReturns: row[11].integer)
                }))))
        }
    }

    func getSlaReport(_ input: Operations.GetSlaReport.Input) async throws -> Operations.GetSlaReport.Output {
        switch try await report(.sla, input.query, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                items: rows.map { row in
                    .init(period: row[0].text, periodStart: row[1].time, target: .init(rawValue: row[2].text)!, measured: row[3].integer,
                          met: row[4].integer, breached: row[5].integer, attainment: row[6].number, overdueMedianSeconds: row[7].number)
                }))))
        }
    }

    func getSlaBreachesReport(_ input: Operations.GetSlaBreachesReport.Input) async throws -> Operations.GetSlaBreachesReport.Output {
        let accept = input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }
        let page = BreachPage(limit: try BreachPage.limit(input.query.limit), after: try input.query.cursor.map(BreachPage.Cursor.init))
        switch try await report(.slaBreaches, input.query, accept: accept, page: page) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            let next = rows.count > page.limit ? BreachPage.cursor(after: rows[page.limit - 1]).text : nil
            PageCursor.setLinkHeader(nextCursor: next)
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                truncated: next != nil, nextCursor: next,
                items: rows.prefix(page.limit).map { row in
                    .init(target: .init(rawValue: row[0].text)!, ticketId: UUID(uuidString: row[1].text)!.resourceID, ticketNumber: row[2].integer,
                          dueAt: row[3].time, endedAt: row[4] == .null ? nil : row[4].time, overdueSeconds: row[5].number ?? 0,
                          agentId: UUID(uuidString: row[6].text)?.resourceID, channel: .init(rawValue: row[7].text)!,
                          priority: .init(rawValue: row[8].text)!)
                }))))
        }
    }

    func getCategoriesReport(_ input: Operations.GetCategoriesReport.Input) async throws -> Operations.GetCategoriesReport.Output {
        switch try await report(.categories, input.query, accept: input.headers.accept.map { ($0.contentType.rawValue, $0.quality.doubleValue) }) {
        case .csv(let body): return .ok(.init(body: .csv(body)))
        case .rows(let request, let rows):
            return .ok(.init(body: .json(.init(
                timeZone: request.timeZone, granularity: .init(rawValue: request.granularity.rawValue)!, from: request.from, to: request.to,
                items: rows.map { row in
                    .init(dimension: .init(rawValue: row[0].text)!, value: row[1].text, tickets: row[2].integer, inboundMessages: row[3].integer,
                          firstResponseMedianBusinessSeconds: row[4].number, firstResponseMedianWallSeconds: row[5].number,
                          resolutionMedianWallSeconds: row[6].number)
                }))))
        }
    }

    /// `format=csv`, or an Accept whose most preferred type is `text/csv`, or one that allows CSV but
    /// not JSON (`text/*`); JSON otherwise.
    static func wantsCSV(format: String?, accept: [(type: String, quality: Double)], acceptable: AcceptHeader) -> Bool {
        if let format { return format == "csv" }
        let preferred = accept.filter { $0.quality > 0 }.max { $0.quality < $1.quality }
        if preferred?.type == "text/csv" { return true }
        return acceptable.allows("text/csv") && !acceptable.allows("application/json")
    }
}

/// The query parameters every report takes (the generated types share them through
/// `components/parameters`).
protocol ReportQuery {
    var from: Components.Parameters.ReportFrom { get }
    var to: Components.Parameters.ReportTo { get }
    var granularity: Components.Parameters.ReportGranularity? { get }
    var timeZone: Components.Parameters.ReportTimeZone? { get }
    var channel: Components.Parameters.ReportChannel? { get }
    var queue: Components.Parameters.ReportQueue? { get }
    var category: Components.Parameters.ReportCategory? { get }
    var tag: Components.Parameters.ReportTag? { get }
    var agentId: Components.Parameters.ReportAgent? { get }
    var priority: Components.Parameters.ReportPriority? { get }
    var format: Components.Parameters.ReportFormat? { get }
    var bom: Components.Parameters.ReportByteOrderMark? { get }
}

extension Operations.GetVolumeReport.Input.Query: ReportQuery {}
extension Operations.GetBacklogReport.Input.Query: ReportQuery {}
extension Operations.GetResponseTimesReport.Input.Query: ReportQuery {}
extension Operations.GetAgentsReport.Input.Query: ReportQuery {}
extension Operations.GetSlaReport.Input.Query: ReportQuery {}
extension Operations.GetSlaBreachesReport.Input.Query: ReportQuery {}
extension Operations.GetCategoriesReport.Input.Query: ReportQuery {}

extension HTTPField.Name {
    static let dataAsOf = Self("X-Data-As-Of")!
}
