"""Word lists and fixed tables the demo generator draws from. Data only: no randomness, no logic."""
from __future__ import annotations

COMPANY_NAME = "Demo Co"
COMPANY_DOMAIN = "democo.io"
SOURCE = "demo"
PIPELINE = "Sales Pipeline"

# normalized stage -> (raw HubSpot-like label, internal stage id, probability 0-100)
STAGES: dict[str, tuple[str, str, int]] = {
    "awareness": ("Discovery", "discovery", 10),
    "qualification": ("Appointment Scheduled", "appointmentscheduled", 20),
    "evaluation": ("Presentation Scheduled", "presentationscheduled", 40),
    "decision": ("Proposal Sent", "proposalsent", 60),
    "negotiation": ("Contract Sent", "contractsent", 80),
    "closed_won": ("Closed Won", "closedwon", 100),
    "closed_lost": ("Closed Lost", "closedlost", 0),
}
OPEN_STAGES = ("awareness", "qualification", "evaluation", "decision", "negotiation")

FIRST_NAMES = (
    "Aaliyah Aaron Abigail Adam Adrian Aisha Alan Alejandro Alex Alicia Amara Amir Ana Andre Andrea Angela Anika "
    "Arjun Ava Ben Bianca Blake Brandon Brianna Caleb Camila Carlos Carmen Chloe Chris Claire Connor Dana Daniel "
    "Daria David Deepa Derek Diego Elena Eli Elijah Emily Emma Eric Ethan Fatima Felix Fiona Gabriel Grace Hana "
    "Hannah Hector Ian Imani Isaac Isabel Ivan Jack Jade Jamal James Jasmine Javier Jenna Jin Jordan Jose Julia "
    "Julian Kai Kara Keisha Kevin Kim Laila Lauren Leo Liam Lily Lucas Luis Maya Megan Mei Mia Michael Miguel "
    "Mira Nadia Naomi Nate Nia Nikhil Noah Olivia Omar Owen Paige Pablo Priya Quinn Rachel Rafael Ravi Rebecca "
    "Rohan Rosa Ryan Sam Samir Sara Sean Sofia Tara Theo Tom Tyler Uma Victor Wei Will Yara Yusuf Zoe"
).split()

LAST_NAMES = (
    "Abbott Adeyemi Alvarez Anderson Bailey Banerjee Barnes Becker Bell Bennett Brooks Burke Campbell Carter Chen "
    "Choi Clarke Cohen Collins Cooper Cruz Das Davies Diaz Dubois Edwards Ellis Evans Fischer Flores Foster Garcia "
    "Gomez Gonzalez Graham Grant Gupta Hall Hansen Harris Hayes Henderson Hernandez Hill Hoffman Hughes Ito Iyer "
    "Jackson James Jensen Johnson Kapoor Kaur Keller Kelly Khan Kim Klein Kowalski Kumar Larsen Lee Lewis Lim "
    "Lopez Martin Martinez Mehta Meyer Miller Mitchell Moore Morales Murphy Nakamura Nguyen Novak Okafor Olsen "
    "Ortiz Park Patel Perez Peterson Phillips Price Quinn Ramirez Reddy Reed Reyes Richter Rivera Roberts "
    "Robinson Rodriguez Rossi Russo Sanchez Santos Schmidt Shah Silva Singh Sato Stewart Sullivan Tanaka Taylor "
    "Thomas Torres Tran Turner Walker Wang Ward Watson Weber White Whitfield Williams Wilson Wong Wright Yamamoto "
    "Young Zhang"
).split()

NAME_PREFIXES = (
    "Acme Alder Amber Apex Arbor Ardent Aspen Atlas Aurora Beacon Bellwether Birch Blue Bluepeak Bold Bridge "
    "Bright Brightline Cadence Canyon Cardinal Cascade Cedar Clearwater Cobalt Copper Crest Crown Delta Ember "
    "Evergreen Falcon Fathom Fern Firefly Flagship Forge Foundry Granite Greenfield Halcyon Harbor Hawthorne "
    "Helix Highland Horizon Indigo Iron Ironwood Juniper Keystone Kestrel Lakeside Lantern Larkspur Ledger "
    "Lighthouse Linden Lumen Magnolia Maple Meridian Mesa Milestone Monarch Northstar Northwind Oakridge Onyx "
    "Orchard Osprey Pacific Paragon Pinnacle Pioneer Polaris Prairie Quarry Radiant Redwood Ridgeline Riverbend "
    "Sable Sagebrush Sentinel Sequoia Silverline Skyline Sparrow Spruce Stonebridge Summit Sunrise Tidewater "
    "Timber Trailhead True Union Vanguard Vantage Verdant Vertex Willow Windward Zenith"
).split()

# industry -> nouns that read like a company in it
INDUSTRIES: dict[str, tuple[str, ...]] = {
    "Software": ("Software", "Labs", "Systems", "Cloud", "Data", "Analytics"),
    "Financial Services": ("Financial", "Capital", "Payments", "Lending", "Insurance"),
    "Healthcare": ("Health", "Care", "Medical", "Diagnostics", "Therapeutics"),
    "Manufacturing": ("Manufacturing", "Industries", "Fabrication", "Components", "Machining"),
    "Logistics": ("Logistics", "Freight", "Shipping", "Supply", "Transit"),
    "Retail & E-commerce": ("Retail", "Goods", "Outfitters", "Market", "Commerce"),
    "Professional Services": ("Consulting", "Partners", "Advisory", "Staffing", "Group"),
    "Media & Marketing": ("Media", "Digital", "Creative", "Studios", "Marketing"),
    "Education": ("Learning", "Education", "Academy", "EdTech"),
    "Real Estate": ("Properties", "Realty", "Living", "Spaces"),
}
INDUSTRY_WEIGHTS = (22, 14, 12, 10, 9, 9, 9, 7, 4, 4)

# (country, share, [(city, state)])
GEOGRAPHY = (
    ("United States", 68, (("Austin", "TX"), ("Denver", "CO"), ("Chicago", "IL"), ("Boston", "MA"),
                           ("Atlanta", "GA"), ("Seattle", "WA"), ("San Francisco", "CA"), ("New York", "NY"),
                           ("Raleigh", "NC"), ("Minneapolis", "MN"), ("Salt Lake City", "UT"), ("Columbus", "OH"))),
    ("Canada", 9, (("Toronto", "ON"), ("Vancouver", "BC"), ("Montreal", "QC"))),
    ("United Kingdom", 10, (("London", None), ("Manchester", None), ("Edinburgh", None))),
    ("Germany", 5, (("Berlin", None), ("Munich", None))),
    ("Netherlands", 4, (("Amsterdam", None), ("Utrecht", None))),
    ("Australia", 4, (("Sydney", "NSW"), ("Melbourne", "VIC"))),
)
TLDS_BY_COUNTRY = {"United Kingdom": "co.uk", "Germany": "de", "Netherlands": "nl", "Australia": "com.au", "Canada": "ca"}

# (title, seniority, department, weight) of the people Demo Co sells to
CONTACT_TITLES = (
    ("Chief Revenue Officer", "c_level", "Sales", 4),
    ("VP of Sales", "vp", "Sales", 8),
    ("VP of Revenue Operations", "vp", "Operations", 4),
    ("Director of Sales", "director", "Sales", 8),
    ("Director of Revenue Operations", "director", "Operations", 7),
    ("Head of Sales Enablement", "director", "Sales", 3),
    ("Sales Operations Manager", "manager", "Operations", 8),
    ("RevOps Manager", "manager", "Operations", 7),
    ("Regional Sales Manager", "manager", "Sales", 8),
    ("Sales Operations Analyst", "individual_contributor", "Operations", 6),
    ("Account Executive", "individual_contributor", "Sales", 5),
    ("Chief Financial Officer", "c_level", "Finance", 3),
    ("FP&A Manager", "manager", "Finance", 3),
    ("IT Director", "director", "IT", 3),
    ("Security Engineer", "individual_contributor", "IT", 2),
    ("Procurement Manager", "manager", "Procurement", 3),
    ("Chief Executive Officer", "c_level", "Executive", 2),
)

TEAM_NAMES = ("Mid-Market East", "Mid-Market West", "Mid-Market Central", "Mid-Market EMEA", "Mid-Market South",
              "Mid-Market North", "Mid-Market Pacific", "Mid-Market Atlantic", "Mid-Market Mountain",
              "Mid-Market APAC")

PRODUCTS = ("Platform", "Forecasting", "Pipeline Inspection", "Revenue Intelligence", "Deal Desk")
COMPETITORS = ("Clari", "Gong Forecast", "BoostUp", "Aviso", "Spreadsheets", None, None)
USE_CASES = ("Forecasting", "Pipeline inspection", "Deal reviews", "Rep coaching", "Territory planning")
LOSS_REASONS = ("Price", "Chose competitor", "No decision", "Timing", "Missing feature", "Champion left")
LEAD_SOURCES = (("Website", 30), ("Outbound", 25), ("Webinar", 12), ("Referral", 10), ("Event", 10),
                ("Paid Search", 8), ("Partner", 5))
CRMS = ("Salesforce", "HubSpot", "HubSpot", "Salesforce", "Pipedrive")

NEXT_STEPS = {
    "awareness": ("Book discovery follow-up with {first}", "Send case study and agenda for next call",
                  "Confirm pain points and current forecasting process"),
    "qualification": ("Qualify budget and timeline with {first}", "Schedule demo with sales leadership",
                      "Map decision process and stakeholders"),
    "evaluation": ("Technical deep dive with IT on {date}", "Share sandbox access with {first}'s team",
                   "Run forecasting pilot on Q data", "Security questionnaire due {date}"),
    "decision": ("Proposal review with {first} on {date}", "Send revised pricing for {seats} seats",
                 "Get CFO sign-off on business case"),
    "negotiation": ("MSA redlines back from legal by {date}", "Procurement call to finalize terms",
                    "Signature expected {date}"),
}

# What a recorded meeting is called at each stage it happens in.
MEETING_KINDS = {
    "awareness": ("Discovery", "Intro call"),
    "qualification": ("Qualification", "Discovery follow-up"),
    "evaluation": ("Demo", "Technical deep dive", "Pilot check-in"),
    "decision": ("Proposal review", "Business case review"),
    "negotiation": ("Contract review", "Pricing discussion"),
    "closed_won": ("Kickoff", "Onboarding kickoff"),
    "closed_lost": ("Debrief",),
}

EMAIL_SUBJECTS = {
    "awareness": ("Quick intro — Demo Co x {account}", "Re: forecasting at {account}", "Agenda for our call"),
    "qualification": ("Re: next steps", "Who else should join the demo?", "Recap: discovery call"),
    "evaluation": ("Demo recording + slides", "Sandbox access", "Security questionnaire", "Re: pilot scope"),
    "decision": ("Proposal for {account}", "Re: pricing for {seats} seats", "Business case draft"),
    "negotiation": ("MSA redlines", "Order form for signature", "Re: procurement questions"),
    "closed_won": ("Welcome to Demo Co!", "Kickoff scheduling"),
    "closed_lost": ("Checking in", "Re: decision"),
}
CALL_SUBJECTS = ("Call with {first}", "Follow-up call with {first}", "Left voicemail for {first}", "Quick sync with {first}")
NOTE_SUBJECTS = ("Note: {first} mentioned budget approved for next quarter", "Note: champion is {first}",
                 "Note: competitor {competitor} in the deal", "Note: legal review takes ~2 weeks",
                 "Note: {first} wants references from {industry}")

INTERNAL_MEETINGS = ("Weekly pipeline review", "Forecast call", "Sprint retro", "Sales team all-hands",
                     "RevOps sync", "QBR prep", "Deal review: {account}", "Onboarding: new hire training")

TASK_TITLES = {
    "awareness": ("Send follow-up email to {first}", "Research {account} org chart"),
    "qualification": ("Book demo with {account}", "Confirm budget with {first}"),
    "evaluation": ("Send security questionnaire to {account} IT", "Set up sandbox for {account}",
                   "Share demo recording with {first}"),
    "decision": ("Send proposal to {account}", "Prepare business case for {first}"),
    "negotiation": ("Send MSA redlines to {account} legal", "Chase signature on {account} order form"),
    "closed_won": ("Hand off {account} to Customer Success", "Schedule {account} kickoff"),
    "closed_lost": ("Log loss reason for {account}", "Add {account} to nurture sequence"),
}
TASK_PROJECTS = ("Sales Pipeline", "Deal Desk", "Customer Onboarding")
