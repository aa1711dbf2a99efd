"""Word pools the generator draws names, titles and descriptions from.

A few entries deliberately carry characters that stress the callout encoder (``& < > ' " +`` and
non-ASCII letters), so signed callouts exercise the .NET escaping in normal runs, not only in
dedicated tests.
"""

from __future__ import annotations

COMPANY_WORDS = (
    "Acme",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Müller & Söhne",
    "O'Brien",
    "Café Zoë",
    "Blue Harbor",
    "Summit",
    "Evergreen",
    "Pinnacle",
    "Redwood",
    "Horizon",
    "Quantum",
    "Nordlicht",
    "Ålesund",
)
COMPANY_SUFFIXES = (
    "Ltd",
    "LLC",
    "Inc.",
    "GmbH",
    "Partners",
    "Dental",
    "Logistics",
    "Legal",
    "<IT> Services",
    "Holdings",
)
FIRST_NAMES = (
    "Alice",
    "Bob",
    "Chloé",
    "Dmitri",
    "Eve",
    "Fatima",
    "George",
    "Hana",
    "Ivan",
    "Jürgen",
    "Kenji",
    "Laura",
    "Mateo",
    "Nadia",
    "Olivia",
    "Priya",
    "Quinn",
    "Rafael",
    "Siobhán",
    "Tom",
)
LAST_NAMES = (
    "Smith",
    "Jones",
    "García",
    "Nguyen",
    "O'Neil",
    "Kowalski",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Tanaka",
    "Brown",
    "Ivanova",
    "Larsen",
    "Novák",
    "Okafor",
    "Patel",
)
CITIES = (
    "Springfield",
    "Riverton",
    "Lakeside",
    "München",
    "São Paulo",
    "Leeds",
    "Austin",
    "Toronto",
    "Dublin",
    "Kraków",
)
STREETS = ("Main St", "High Street", "Oak Ave", "Station Rd", "Königstraße", "Elm Way")
STATES = ("CA", "TX", "NY", "ON", "BY", "WA", "")

TICKET_SUBJECTS = (
    "Printer down",
    "Cannot log in",
    "VPN disconnects",
    "Outlook keeps crashing",
    "New starter setup",
    "Server disk space low",
    "Wi-Fi slow in meeting room",
    "Backup job failed",
    "Password reset",
    "Laptop won't boot",
    "Phone system issue",
    "Shared drive missing",
    'Error "0x80070005" on update',
    "License renewal",
    "Firewall alert",
    "Café POS offline",
)
TICKET_CONTEXT = (
    "",
    " - urgent",
    " (reception)",
    " for finance team",
    " & email",
    " <after hours>",
    " +1 user",
    " again",
)
DESCRIPTION_SENTENCES = (
    "User reports the problem started this morning.",
    "Restarted the device; issue persists.",
    "Customer asked for a callback after 3pm.",
    "Affects several users in the office.",
    "Monitoring raised an alert at 02:14 UTC.",
    "Please check event logs & recent updates.",
    "Vendor ticket opened, awaiting reply.",
    "Screenshot attached by the user.",
    "Übergabe an Level II empfohlen.",
    "Temporary workaround applied.",
)
NOTE_TITLES = (
    "Called customer",
    "Remote session",
    "Escalated",
    "Waiting on vendor",
    "Resolution",
    "Update from user",
    "Internal note",
)
CI_PRODUCTS = (
    "Dell Latitude 7440",
    "HP EliteBook 840",
    "Lenovo ThinkPad T14",
    "Dell PowerEdge R650",
    "Cisco Meraki MX68",
    "HP LaserJet Pro M404",
    'Apple MacBook Pro 14"',
    "Ubiquiti UniFi AP",
)
JOB_TITLES = ("Office Manager", "CFO", "IT Contact", "Receptionist", "Director", "Engineer", "")
