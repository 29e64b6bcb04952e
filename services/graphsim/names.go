package graphsim

import "strings"

// Word lists the generator draws from. A few names carry diacritics so
// that clients meet non-ASCII display names as they do in real tenants.

var orgNames = []string{
	"contoso", "fabrikam", "northwind", "adatum", "tailspin", "wingtip",
	"litware", "proseware", "woodgrove", "lucernepublishing", "alpineski",
	"coho", "fourthcoffee", "margiestravel", "relecloud", "treyresearch",
}

var externalDomains = []string{
	"fabrikam.com", "outlook.com", "gmail.com", "partner.example",
	"consultants.example", "agency.example", "northwindtraders.com",
}

var firstNames = []string{
	"Adele", "Alex", "Allan", "Amelia", "Ana", "Andrea", "Anika", "Arjun",
	"Ben", "Bianca", "Brian", "Carla", "Carlos", "Chen", "Chloe", "Christie",
	"Daniel", "David", "Debra", "Diego", "Elena", "Emily", "Emma", "Enrico",
	"Eva", "Fatima", "Felix", "Finn", "Gabriel", "Grace", "Grady", "Hana",
	"Hannah", "Henrik", "Hiroshi", "Irvin", "Isaac", "Isabella", "Ivan",
	"Jack", "James", "Javier", "Johanna", "Joni", "José", "Julia", "Kai",
	"Karim", "Katie", "Laura", "Lee", "Leila", "Liam", "Lidia", "Lina",
	"Lucas", "Lynne", "Maja", "Malik", "Maria", "Mateo", "Megan", "Mei",
	"Miriam", "Mohammed", "Nadia", "Nestor", "Nina", "Noah", "Olga", "Oliver",
	"Omar", "Patti", "Paul", "Pedro", "Pradeep", "Priya", "Rafael", "Raj",
	"Rosa", "Ruth", "Sam", "Sara", "Sebastian", "Sofia", "Søren", "Stefan",
	"Tanja", "Thomas", "Tomás", "Uma", "Victor", "Wei", "Yara", "Yusuf",
	"Zoë", "Łukasz", "Ingrid", "Oskar", "Aisha",
}

var lastNames = []string{
	"Adams", "Ahmed", "Alvarez", "Andersen", "Bauer", "Becker", "Bennett",
	"Brown", "Campbell", "Castro", "Chen", "Clark", "Costa", "Cruz", "Davis",
	"Dubois", "Evans", "Fischer", "Fernández", "Garcia", "Gomez", "Green",
	"Gupta", "Hall", "Hansen", "Hoffmann", "Howard", "Ito", "Jensen",
	"Johnson", "Jones", "Kim", "Klein", "Kowalski", "Kumar", "Larsen", "Lee",
	"Lopez", "Martin", "Meyer", "Miller", "Moore", "Müller", "Nakamura",
	"Nguyen", "Nielsen", "Novak", "O'Brien", "Okafor", "Olsen", "Patel",
	"Perez", "Petrov", "Quinn", "Ramos", "Reddy", "Richter", "Rossi",
	"Sanchez", "Santos", "Schmidt", "Schneider", "Silva", "Singh", "Smith",
	"Sousa", "Suzuki", "Tanaka", "Taylor", "Thomas", "Torres", "Varga",
	"Wagner", "Walker", "Wang", "Weber", "White", "Wilson", "Wójcik", "Wright",
	"Yamamoto", "Young", "Zhang", "Ziegler", "Lindqvist", "Bergström",
}

var departments = []string{
	"Sales", "Marketing", "Engineering", "Finance", "Human Resources",
	"Legal", "Operations", "Support", "IT", "Research",
}

var jobTitles = map[string][]string{
	"Sales":           {"Account Executive", "Sales Manager", "Sales Engineer", "Inside Sales Rep"},
	"Marketing":       {"Marketing Manager", "Content Strategist", "Brand Designer", "Product Marketer"},
	"Engineering":     {"Software Engineer", "Senior Software Engineer", "Engineering Manager", "Site Reliability Engineer", "QA Engineer"},
	"Finance":         {"Accountant", "Financial Analyst", "Controller", "Payroll Specialist"},
	"Human Resources": {"HR Generalist", "Recruiter", "HR Business Partner"},
	"Legal":           {"Corporate Counsel", "Paralegal", "Compliance Officer"},
	"Operations":      {"Operations Manager", "Logistics Coordinator", "Facilities Manager"},
	"Support":         {"Support Engineer", "Customer Success Manager", "Support Lead"},
	"IT":              {"IT Administrator", "Security Analyst", "Helpdesk Technician", "Cloud Architect"},
	"Research":        {"Research Scientist", "Data Scientist", "Lab Technician"},
}

var offices = []string{
	"Redmond 18/2101", "London 2/14", "Berlin Mitte", "Paris La Défense",
	"Tokyo Shinagawa", "São Paulo", "Sydney CBD", "Remote",
}

var groupSuffixes = []string{
	"Readers", "Editors", "Admins", "Approvers", "VPN Users", "Laptops",
	"Contractors", "Leads", "Reviewers", "On-Call", "Auditors", "Owners",
}

var projectWords = []string{
	"Falcon", "Aurora", "Phoenix", "Mercury", "Atlas", "Orion", "Nimbus",
	"Horizon", "Polaris", "Quartz", "Summit", "Voyager", "Zephyr", "Cobalt",
	"Beacon", "Cascade", "Everest", "Lighthouse", "Meridian", "Sequoia",
}

var companyNames = []string{
	"Fabrikam Partners", "Northwind Traders", "Alpine Consulting",
	"Blue Yonder Airlines", "Graphic Design Institute", "Wide World Importers",
}

// asciiFold maps a name to the lower-case ASCII used in mail addresses.
func asciiFold(s string) string {
	s = foldReplacer.Replace(strings.ToLower(s))
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var foldReplacer = strings.NewReplacer(
	"á", "a", "à", "a", "ã", "a", "â", "a", "ä", "ae", "å", "a",
	"é", "e", "è", "e", "ê", "e", "ë", "e",
	"í", "i", "ï", "i", "ó", "o", "ò", "o", "ô", "o", "ö", "oe", "ø", "o",
	"ú", "u", "ü", "ue", "ç", "c", "ñ", "n", "ß", "ss", "ł", "l", "ś", "s",
	"ź", "z", "ż", "z", "ć", "c", "ń", "n", "ę", "e", "ą", "a",
)
